using System.Text.Json;
using NextToken.Chat;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The templates of current model families (fixtures' real-models.json: Llama 3.x, Qwen 2.5/3,
/// Mistral-Nemo, Gemma 2/3, Phi-3.5, DeepSeek-R1, Command-R+/R7B, Hermes-3, functionary, granite)
/// on conversations with and without tools, rendered exactly as Jinja2 renders them for
/// Hugging Face's apply_chat_template; the two cases where the template raises fail with its text.
/// </summary>
public class ChatTemplateRealModelTests(ITestOutputHelper output)
{
    private static readonly Lazy<JsonDocument> File = new(() =>
        JsonDocument.Parse(System.IO.File.ReadAllText(Fixtures.Path("chat-templates", "real-models.json"))));

    private static JsonElement Root => File.Value.RootElement;

    private static JsonElement Case(int index) => Root.GetProperty("cases")[index];

    public static TheoryData<int, string> Cases()
    {
        var cases = new TheoryData<int, string>();
        int index = 0;
        foreach (JsonElement c in Root.GetProperty("cases").EnumerateArray())
            cases.Add(index++, $"{c.GetProperty("name").GetString()} | {c.GetProperty("conversation").GetString()} | generation prompt {c.GetProperty("add_generation_prompt").GetBoolean()}");
        return cases;
    }

    internal static ChatConversation Conversation(string name) =>
        ChatConversation.FromJson(Root.GetProperty("conversations").GetProperty(name), $"real-models.json conversations.{name}");

    private static DateTime Date() => DateTime.Parse(Root.GetProperty("date").GetString()!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Renders case <paramref name="index"/>: the text, or null with the error when the template raised.</summary>
    private static (string? Text, TemplateException? Error) Render(int index)
    {
        JsonElement c = Case(index);
        try
        {
            var template = new ChatTemplate(c.GetProperty("template").GetString()!, c.GetProperty("name").GetString()!);
            return (template.Render(Conversation(c.GetProperty("conversation").GetString()!), c.GetProperty("add_generation_prompt").GetBoolean(),
                c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!, Date()), null);
        }
        catch (TemplateException error)
        {
            return (null, error);
        }
    }

    private static bool Matches(int index, (string? Text, TemplateException? Error) result)
    {
        JsonElement c = Case(index);
        return c.TryGetProperty("error", out JsonElement expectedError)
            ? result.Error?.Raised == expectedError.GetString()
            : result.Text == c.GetProperty("expected").GetString();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Render_RealModelCase_EqualsJinja2(int index, string description)
    {
        JsonElement c = Case(index);
        var (text, error) = Render(index);
        output.WriteLine(description);
        if (c.TryGetProperty("error", out JsonElement expectedError))
        {
            Assert.NotNull(error);
            output.WriteLine(error.Message);
            Assert.Equal(expectedError.GetString(), error.Raised);
            Assert.Contains(expectedError.GetString()!, error.Message);
            Assert.Contains("template line", error.Message);
            return;
        }
        if (error is not null) Assert.Fail($"{description}: {error.Message}");
        string expected = c.GetProperty("expected").GetString()!;
        int differs = Enumerable.Range(0, Math.Min(expected.Length, text!.Length)).FirstOrDefault(i => expected[i] != text[i], Math.Min(expected.Length, text.Length));
        if (differs < Math.Max(expected.Length, text.Length))
            output.WriteLine($"first difference at character {differs}: expected …{Around(expected, differs)}… got …{Around(text, differs)}…");
        Assert.Equal(expected, text);
    }

    private static string Around(string s, int at) => JsonSerializer.Serialize(s[Math.Max(0, at - 40)..Math.Min(s.Length, at + 40)]);

    [Fact]
    public void Render_AllRealModelCases_CountPerTemplatePrinted()
    {
        var counts = new SortedDictionary<string, (int Exact, int Total)>(StringComparer.Ordinal);
        int cases = Root.GetProperty("cases").GetArrayLength();
        for (int i = 0; i < cases; i++)
        {
            string name = Case(i).GetProperty("name").GetString()!;
            var (exact, total) = counts.GetValueOrDefault(name);
            counts[name] = (exact + (Matches(i, Render(i)) ? 1 : 0), total + 1);
        }
        foreach (var (name, (exact, total)) in counts) output.WriteLine($"{exact}/{total}  {name}");
        int all = counts.Values.Sum(v => v.Exact);
        output.WriteLine($"real-model chat templates: {all} of {cases} cases render exactly as Jinja2 does");
        Assert.Equal(15, counts.Count);
        Assert.Equal(76, cases);
        Assert.Equal(cases, all);
    }
}
