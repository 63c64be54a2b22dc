using ScottPlot;

namespace NextToken.Cli;

/// <summary>PNG or SVG pictures for the inspection commands (ScottPlot), chosen by the file's extension.</summary>
internal static class Plots
{
    public static void Save(Plot plot, string path, int width = 900, int height = 600)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        switch (extension)
        {
            case ".png": plot.SavePng(path, width, height); break;
            case ".svg": plot.SaveSvg(path, width, height); break;
            default: throw new NextTokenException($"--plot {path}: expected a .png or .svg file name");
        }
    }

    public static void Heatmap(string path, string title, double[,] values, string[] rowLabels, string[] columnLabels)
    {
        var plot = new Plot();
        // ScottPlot draws row 0 at the top when the data is flipped; rows are queries, columns keys.
        var heatmap = plot.Add.Heatmap(values);
        heatmap.FlipVertically = true;
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(heatmap);
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = "key position";
        plot.Axes.Left.Label.Text = "query position";
        int rows = values.GetLength(0), columns = values.GetLength(1);
        if (columns <= 48)
            plot.Axes.Bottom.SetTicks(Enumerable.Range(0, columns).Select(i => (double)i).ToArray(), columnLabels);
        if (rows <= 48)
            plot.Axes.Left.SetTicks(Enumerable.Range(0, rows).Select(i => (double)(rows - 1 - i)).ToArray(), rowLabels);
        plot.Axes.Bottom.TickLabelStyle.Rotation = 60;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        Save(plot, path, Math.Max(700, 40 + columns * 18), Math.Max(500, 80 + rows * 16));
    }

    public static void Lines(string path, string title, string xLabel, string yLabel, double[] x, params (string Label, double[] Y)[] series)
    {
        var plot = new Plot();
        foreach (var (label, y) in series)
        {
            var line = plot.Add.Scatter(x, y);
            line.LegendText = label;
        }
        plot.ShowLegend();
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.Axes.Left.Label.Text = yLabel;
        Save(plot, path);
    }

    public static void LabelledScatter(string path, string title, string xLabel, string yLabel, IReadOnlyList<(double X, double Y, string Label, int Group)> points)
    {
        var plot = new Plot();
        foreach (var group in points.GroupBy(p => p.Group))
        {
            var scatter = plot.Add.ScatterPoints(group.Select(p => p.X).ToArray(), group.Select(p => p.Y).ToArray());
            scatter.LegendText = $"prompt {group.Key + 1}";
            scatter.MarkerSize = 7;
        }
        if (points.Count <= 200)
            foreach (var p in points)
            {
                var text = plot.Add.Text(p.Label, p.X, p.Y);
                text.LabelFontSize = 10;
            }
        plot.ShowLegend();
        plot.Title(title);
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.Axes.Left.Label.Text = yLabel;
        Save(plot, path);
    }
}
