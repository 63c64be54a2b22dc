using NextToken.Inspection;
using NextToken.Models;

namespace NextToken.Tests;

/// <summary>The README's library example, as written there (with a fixture model), so it cannot rot.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void LibraryExample_RunsAsDocumented()
    {
        var printed = new StringWriter();
        using LanguageModel model = ModelLoader.Load(Fixtures.Model("gpt2-tiny.f32.gguf"));
        int[] ids = model.Tokenizer.Encode("The cat sat on the").Ids;
        var logits = new float[model.VocabSize];
        ModelState state = model.CreateState();
        model.Forward(state, ids, logits);
        foreach (RankedToken t in new TokenDistribution(logits).Top(5))
            printed.WriteLine($"{t.Rank} {model.Tokenizer.TokenDisplay(t.Id)} {t.Probability:P2}");

        using (model.Hooks.Add("blocks.1.attn.hook_pattern", a => printed.WriteLine(string.Join("×", a.Shape))))
            model.Forward(model.CreateState(), ids, logits);

        var (allLogits, cache) = model.RunWithCache(ids);
        float[] resid = cache["blocks.1.hook_resid_pre"].Data;
        int space = model.Tokenizer.Encode(" ").Ids[0];
        var steering = SteeringVector.FromPrompts(model, model.Tokenizer.Encode(" wedding").Ids, [space], layer: 1, padId: space);
        using (steering.Apply(model, coefficient: 4))
            model.Forward(model.CreateState(), ids, logits);
        LensLayer[] lens = LogitLens.Run(model, ids);

        Assert.Contains("4×5×5", printed.ToString());
        Assert.Equal(ids.Length * model.VocabSize, allLogits.Length);
        Assert.Equal(ids.Length * model.EmbeddingLength, resid.Length);
        Assert.Equal(model.LayerCount + 1, lens.Length);
    }
}
