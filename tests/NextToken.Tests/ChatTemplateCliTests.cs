using System.Text.Json;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// <c>nexttoken template --messages FILE</c> with the real-model cases: a file holding
/// <c>{"messages": […], "tools": […]}</c> hands tools and tool calls to the template as
/// apply_chat_template(tools=…) does; a plain list of messages works as before.
/// </summary>
public class ChatTemplateCliTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly Lazy<JsonDocument> File = new(() =>
        JsonDocument.Parse(System.IO.File.ReadAllText(Fixtures.Path("chat-templates", "real-models.json"))));

    private static JsonElement Root => File.Value.RootElement;

    private static JsonElement Case(string name, string conversation, bool generationPrompt) =>
        Root.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name
            && c.GetProperty("conversation").GetString() == conversation && c.GetProperty("add_generation_prompt").GetBoolean() == generationPrompt);

    private (int Code, string Stdout, string Stderr) RunTemplate(JsonElement c, string messagesJson, bool generationPrompt)
    {
        string templatePath = _temp.File("template.jinja"), messagesPath = _temp.File("messages.json");
        System.IO.File.WriteAllText(templatePath, c.GetProperty("template").GetString());
        System.IO.File.WriteAllText(messagesPath, messagesJson);
        List<string> args = ["template", "--template-file", templatePath, "--messages", messagesPath,
            "--bos-token", c.GetProperty("bos_token").GetString()!, "--eos-token", c.GetProperty("eos_token").GetString()!,
            "--date", Root.GetProperty("date").GetString()!];
        if (!generationPrompt) args.Add("--no-generation-prompt");
        return CliTests.RunWith(null, null, [.. args]);
    }

    /// <summary>Every template the fixtures render with tools (tool calls as JSON objects or strings, tool results, the tools list).</summary>
    public static TheoryData<string, string> ToolCases()
    {
        var cases = new TheoryData<string, string>();
        foreach (JsonElement c in Root.GetProperty("cases").EnumerateArray())
            if (c.GetProperty("conversation").GetString()!.StartsWith("tools", StringComparison.Ordinal) && c.GetProperty("add_generation_prompt").GetBoolean())
                cases.Add(c.GetProperty("name").GetString()!, c.GetProperty("conversation").GetString()!);
        return cases;
    }

    [Theory]
    [MemberData(nameof(ToolCases))]
    public void Template_MessagesAndToolsFile_PrintsWhatJinja2Renders(string name, string conversation)
    {
        JsonElement c = Case(name, conversation, generationPrompt: true);
        var (code, stdout, stderr) = RunTemplate(c, Root.GetProperty("conversations").GetProperty(conversation).GetRawText(), generationPrompt: true);
        Assert.True(code == 0, stderr);
        output.WriteLine($"{name} | {conversation}: {stdout.Length} characters");
        Assert.Equal(c.GetProperty("expected").GetString(), stdout);
    }

    [Fact]
    public void Template_ListOfMessagesWithoutGenerationPrompt_PrintsWhatJinja2Renders()
    {
        JsonElement c = Case("meta-llama/Llama-3.2-3B-Instruct", "chat", generationPrompt: false);
        var (code, stdout, stderr) = RunTemplate(c, Root.GetProperty("conversations").GetProperty("chat").GetProperty("messages").GetRawText(), generationPrompt: false);
        Assert.True(code == 0, stderr);
        Assert.Equal(c.GetProperty("expected").GetString(), stdout);
    }

    [Fact]
    public void Template_TemplateRaises_OneLineWithItsMessageAndLine()
    {
        JsonElement c = Case("google/gemma-2-2b-it", "chat", generationPrompt: true);
        var (code, stdout, stderr) = RunTemplate(c, Root.GetProperty("conversations").GetProperty("chat").GetRawText(), generationPrompt: true);
        output.WriteLine(stderr);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(c.GetProperty("error").GetString()!, stderr);
        Assert.Contains("template line 1", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"tools\": {\"name\": \"x\"}}", "\"tools\" must be a list, not an object")]
    [InlineData("{\"tools\": []}", "the object has no \"messages\"")]
    [InlineData("[{\"role\": \"user\", \"content\": \"Hi\"}, {\"content\": \"no role\"}]", "[1].role must be a string (missing)")]
    [InlineData("{\"messages\": [{\"role\": 7, \"content\": \"Hi\"}]}", "messages[0].role must be a string, not a number")]
    [InlineData("{\"messages\": [\"Hi\"]}", "messages[0] must be an object with \"role\" and \"content\", not a string")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\", \"n\": 123456789012345678901234567890}]}", "messages[0].n: integer 123456789012345678901234567890 does not fit in 64 bits")]
    [InlineData("[{\"role\": \"user\", \"content\": \"Hi\"", "not valid JSON")]
    public void Template_BadMessagesFile_OneLineNamingFileAndField(string json, string expected)
    {
        string templatePath = _temp.File("template.jinja"), messagesPath = _temp.File("messages.json");
        System.IO.File.WriteAllText(templatePath, "{{ messages }}");
        System.IO.File.WriteAllText(messagesPath, json);
        var (code, _, stderr) = CliTests.RunWith(null, null, "template", "--template-file", templatePath, "--messages", messagesPath);
        output.WriteLine(stderr);
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(messagesPath, stderr);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
