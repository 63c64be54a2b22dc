using NextToken.Hub;
using Spectre.Console;

namespace NextToken.Cli;

/// <summary>Runs a hub download with a progress bar per file (size, speed, time left) and its retries, on stderr so --json output stays clean.</summary>
internal static class Downloads
{
    public static async Task<string> Run(Func<IProgress<DownloadProgress>, Task<string>> download)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        string result = "";
        await console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                var progress = new Progress<DownloadProgress>(p =>
                {
                    if (p.Message is { } message)
                    {
                        console.MarkupLine($"[yellow]{Markup.Escape(p.File)}[/]: {Markup.Escape(message)}"); // retries and resumes, shown above the bars
                        return;
                    }
                    if (!tasks.TryGetValue(p.File, out ProgressTask? task))
                        tasks[p.File] = task = context.AddTask(Markup.Escape(p.File), maxValue: Math.Max(1, p.Total));
                    task.Value = p.Downloaded;
                });
                result = await download(progress);
            });
        return result;
    }
}
