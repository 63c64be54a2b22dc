using System.Text.Json;
using NextToken.Chat;
using NextToken.Gguf;
using NextToken.Models;
using NextToken.Tokenization;
using NextToken.Training;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>Helpers the fine-tuning tests share: the fixture model, chats, and log-probabilities from the inference engine (not the trainer).</summary>
internal static class FineTuneFixtures
{
    public static string Init => Fixtures.Path("training", "tiny-gpt2.init.gguf");
    public static string Datasets(params string[] parts) => Path.GetFullPath(Path.Combine([Fixtures.Dir, "..", "datasets", .. parts]));

    public static Tokenizer InitTokenizer()
    {
        using GgufFile file = GgufFile.Open(Init);
        return Tokenizer.Load(file);
    }

    /// <summary>log p(tokens[t] | tokens[..t]) for t = 1… through the inference engine's forward pass.</summary>
    public static double[] EngineLogProbs(string model, int[] tokens)
    {
        using LanguageModel lm = ModelLoader.Load(model);
        ModelState state = lm.CreateState();
        int v = lm.VocabSize, n = tokens.Length - 1;
        var logits = new float[n * v];
        lm.Forward(state, tokens.AsSpan(0, n), logits, LogitsFor.AllPositions);
        var result = new double[n];
        for (int t = 0; t < n; t++)
        {
            ReadOnlySpan<float> row = logits.AsSpan(t * v, v);
            double max = double.NegativeInfinity;
            foreach (float x in row) max = Math.Max(max, x);
            double sum = 0;
            foreach (float x in row) sum += Math.Exp(x - max);
            result[t] = row[tokens[t + 1]] - max - Math.Log(sum);
        }
        return result;
    }

    public static void WriteLines(string path, params object[] items) =>
        File.WriteAllLines(path, items.Select(item => JsonSerializer.Serialize(item)));

    public static object Chat(params (string Role, string Content)[] messages) => new { messages = messages.Select(m => new { role = m.Role, content = m.Content }) };

    public static double[] JsonLosses(string stdout, string field = "loss") =>
        [.. stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement.GetProperty(field).GetDouble())];
}

/// <summary><c>nexttoken sft</c> and the chat encoding it trains on (assistant-only loss).</summary>
public class TrainingSftTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => CliTests.RunWith(null, null, args);

    [Theory]
    [InlineData("plain")]
    [InlineData("chatml")]
    public void Encode_MasksExactlyTheAssistantTurns_OnGsm8kChats(string templateName)
    {
        Tokenizer tokenizer = FineTuneFixtures.InitTokenizer();
        ChatTemplate template = ChatTemplate.FromName(templateName);
        string path = FineTuneFixtures.Datasets("chat", "gsm8k-test.chat.jsonl");
        List<List<ChatMessage>> chats = ChatData.ReadChats(path)[..50];
        int checkedTurns = 0;
        foreach (List<ChatMessage> chat in chats)
        {
            // A two-turn chat the way the data holds it, plus a second exchange so later turns are masked too.
            List<ChatMessage> messages = [.. chat, new("user", "And twice that?"), new("assistant", "Twice as much.")];
            SftExample e = ChatData.Encode(messages, template, tokenizer, "test");
            Assert.Equal(template.Render(messages, addGenerationPrompt: false), tokenizer.Decode(e.Tokens));
            // The masked tokens, run by run, are the assistant turns as the template writes them.
            var runs = new List<string>();
            for (int i = 0; i < e.Tokens.Length;)
            {
                if (!e.Assistant[i]) { i++; continue; }
                int j = i;
                while (j < e.Tokens.Length && e.Assistant[j]) j++;
                runs.Add(tokenizer.Decode(e.Tokens.AsSpan(i, j - i)));
                i = j;
            }
            string[] expected = templateName == "plain"
                ? [$" {chat[1].Content}\n", " Twice as much.\n"]
                : [$"{chat[1].Content}<|im_end|>\n", "Twice as much.<|im_end|>\n"];
            Assert.Equal(expected, runs);
            checkedTurns += runs.Count;
        }
        output.WriteLine($"{templateName}: {checkedTurns} assistant turns of {chats.Count} GSM8K chats masked exactly");
    }

    [Fact]
    public void Sft_FirstLossIsTheMaskedLossOfTheEngine_AndFallsAndTheModelRuns()
    {
        var chats = new[]
        {
            FineTuneFixtures.Chat(("user", "Who is king?"), ("assistant", "Richard is king.")),
            FineTuneFixtures.Chat(("user", "Say hi"), ("assistant", "Hi there, friend.")),
            FineTuneFixtures.Chat(("system", "Be brief."), ("user", "Name a city"), ("assistant", "Verona."), ("user", "Another one"), ("assistant", "Padua, where the play is.")),
        };
        string data = _temp.File("chats.jsonl");
        FineTuneFixtures.WriteLines(data, chats);
        var (code, stdout, stderr) = Run("sft", "--init-from", FineTuneFixtures.Init, "--data", data, "--batch-size", "3", "--max-iters", "8",
                                         "--lr", "1e-3", "--template", "plain", "--out", _temp.File("sft.gguf"), "--json", "--threads", "2",
                                         "--val-data", data, "--eval-interval", "4");
        Assert.True(code == 0, stderr);
        double[] losses = FineTuneFixtures.JsonLosses(stdout);
        // Held-out loss at steps 0, 4 and the last (here the training chats themselves: it falls as the training loss does).
        JsonElement[] rows = [.. stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement)];
        int[] evaluated = [.. rows.Where(r => r.GetProperty("val_loss").ValueKind == JsonValueKind.Number).Select(r => r.GetProperty("step").GetInt32())];
        Assert.Equal([0, 4, 7], evaluated);
        Assert.True(rows[7].GetProperty("val_loss").GetDouble() < rows[0].GetProperty("val_loss").GetDouble());

        // Step 0 sees every chat once (batch 3): Σ CE over assistant targets / their count, from the engine's logits.
        Tokenizer tokenizer = FineTuneFixtures.InitTokenizer();
        double sum = 0;
        int count = 0;
        foreach (List<ChatMessage> chat in ChatData.ReadChats(data))
        {
            SftExample e = ChatData.Encode(chat, ChatTemplate.FromName("plain"), tokenizer, "test");
            int[] tokens = e.Tokens[..Math.Min(33, e.Tokens.Length)]; // block 32 (the context) + 1
            double[] logProbs = FineTuneFixtures.EngineLogProbs(FineTuneFixtures.Init, tokens);
            for (int t = 0; t < logProbs.Length; t++)
                if (e.Assistant[t + 1]) { sum -= logProbs[t]; count++; }
        }
        double expected = sum / count;
        output.WriteLine($"step-0 loss {losses[0]:G9}, engine's masked CE over {count} assistant tokens {expected:G9}, |diff| {Math.Abs(losses[0] - expected):E2}; losses {string.Join(", ", losses.Select(l => l.ToString("F4")))}");
        Assert.True(Math.Abs(losses[0] - expected) <= 1e-4);
        Assert.True(losses[^1] < losses[0] - 0.5, "8 steps at lr 1e-3 on three chats should lower the loss");

        // The model runs in the engine and carries the template it was trained with.
        using (GgufFile written = GgufFile.Open(_temp.File("sft.gguf")))
            Assert.Equal(ChatTemplate.BuiltIn["plain"], written.GetStringOrNull("tokenizer.chat_template"));
        var (nextCode, _, nextErr) = Run("next", "--model", _temp.File("sft.gguf"), "--prompt", "User: Who is king?\nAssistant:", "--json");
        Assert.True(nextCode == 0, nextErr);
    }

    [Fact]
    public void Sft_BadJsonlLines_FailWithOneLineNamingFileAndLine()
    {
        string good = JsonSerializer.Serialize(FineTuneFixtures.Chat(("user", "a"), ("assistant", "b")));
        foreach (var (line, expected) in new[]
                 {
                     ("{\"messages\": [{\"role\": \"user\"}]}", "messages[0] needs string fields"),
                     ("{\"prompt\": \"x\"}", "expected an object with a \"messages\" array"),
                     ("{\"messages\": [", "not valid JSON"),
                     ("{\"messages\": [{\"role\": \"user\", \"content\": \"only a question\"}]}", "no assistant message"),
                 })
        {
            string path = _temp.File("bad.jsonl");
            File.WriteAllLines(path, [good, "", good, line]);
            var (code, _, stderr) = Run("sft", "--init-from", FineTuneFixtures.Init, "--data", path, "--out", _temp.File("x.gguf"));
            output.WriteLine(stderr.Trim());
            Assert.Equal(1, code);
            Assert.Contains($"{path} line 4: {expected}", stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
    }
}
