using System.Text.Json;
using NextToken.Chat;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>Real chat templates rendered as Jinja 3.1 renders them (fixtures' cases.json).</summary>
public class ChatTemplateTests(ITestOutputHelper output)
{
    private static readonly Lazy<JsonDocument> Cases = new(() => JsonDocument.Parse(File.ReadAllText(Fixtures.Path("chat-templates", "cases.json"))));

    public static TheoryData<string> CaseNames()
    {
        var names = new TheoryData<string>();
        foreach (JsonElement c in Cases.Value.RootElement.GetProperty("cases").EnumerateArray()) names.Add(c.GetProperty("name").GetString()!);
        return names;
    }

    internal static List<ChatMessage> Messages() => Cases.Value.RootElement.GetProperty("messages").EnumerateArray()
        .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();

    internal static DateTime Date() => DateTime.Parse(Cases.Value.RootElement.GetProperty("date").GetString()!, System.Globalization.CultureInfo.InvariantCulture);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Render_Case_EqualsJinjaExactly(string name)
    {
        JsonElement c = Cases.Value.RootElement.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        var template = new ChatTemplate(c.GetProperty("template").GetString()!, name);
        string rendered = template.Render(Messages(), addGenerationPrompt: true,
            c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!, Date());
        Assert.Equal(c.GetProperty("expected").GetString(), rendered);
    }

    [Fact]
    public void Render_AllCases_CountPrinted()
    {
        int passed = 0, total = 0;
        foreach (JsonElement c in Cases.Value.RootElement.GetProperty("cases").EnumerateArray())
        {
            total++;
            try
            {
                var template = new ChatTemplate(c.GetProperty("template").GetString()!);
                if (template.Render(Messages(), true, c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!, Date()) == c.GetProperty("expected").GetString())
                    passed++;
            }
            catch (TemplateException)
            {
            }
        }
        output.WriteLine($"chat templates: {passed} of {total} render exactly as Jinja does");
        Console.WriteLine($"Chat templates: {passed} of {total} cases render exactly as Jinja does");
        Assert.Equal(total, passed);
    }

    [Theory]
    [InlineData("{{ raise_exception('no system role') }}", "template raised: no system role")]
    [InlineData("{% if %}", "template:")]
    [InlineData("{{ messages | frobnicate }}", "unsupported filter 'frobnicate'")]
    [InlineData("{% for m in messages %}", "expected '{% endfor %}'")]
    public void Render_Errors_AreClearTemplateExceptions(string source, string expected)
    {
        var error = Assert.Throws<TemplateException>(() => new ChatTemplate(source, "t").Render(Messages()));
        Assert.Contains(expected, error.Message);
    }
}
