using System.Diagnostics;
using NextToken.Chat;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Hostile templates (a GGUF's chat template is untrusted input) meet the interpreter's sandbox:
/// each case found by fuzzing is a one-line TemplateException naming the template line, within
/// seconds, never a stack overflow, a hang or an exhausted memory. Python semantics Jinja2 raises
/// on (division by zero, range step 0) raise here too.
/// </summary>
public class JinjaSandboxTests(ITestOutputHelper output)
{
    private static string Render(string source) =>
        new ChatTemplate(source, "t").Render(ChatTemplateTests.Messages(), addGenerationPrompt: true);

    /// <summary>The template fails with a message containing <paramref name="expected"/> (or one of its " OR " alternatives).</summary>
    private TemplateException Refused(string source, string expected)
    {
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<TemplateException>(() => Render(source));
        output.WriteLine($"{error.Message} [{clock.ElapsedMilliseconds} ms]");
        Assert.True(expected.Split(" OR ").Any(error.Message.Contains), $"'{error.Message}' does not contain '{expected}'");
        Assert.DoesNotContain('\n', error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
        return error;
    }

    private static string Repeat(string s, int n) => string.Concat(Enumerable.Repeat(s, n));

    [Fact]
    public void ToJson_NamespaceContainingItself_IsCircularReferenceError() =>
        Refused("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns|tojson }}", "circular reference");

    [Theory]
    [InlineData("(", "1", ")")]
    [InlineData("[", "", "]")]
    [InlineData("{'a': ", "1", "}")]
    [InlineData("-", "1", "")]
    [InlineData("not ", "1", "")]
    [InlineData("f(", "", ")")]
    public void Parse_NestedHundredThousandDeep_IsNestingError(string open, string middle, string close) =>
        Refused("{{ " + Repeat(open, 100_000) + middle + Repeat(close, 100_000) + " }}", "nesting deeper than 100 levels at line 1");

    [Fact]
    public void Parse_BlocksNestedHundredThousandDeep_IsNestingError() =>
        Refused(Repeat("{% if true %}", 100_000) + Repeat("{% endif %}", 100_000), "nesting deeper than 100 levels");

    [Theory]
    [InlineData("1", "+1")]
    [InlineData("'a'", "|lower")]
    [InlineData("x", ".y")]
    [InlineData("x", " and x")]
    public void Render_LeftDeepChainHundredThousandLong_IsDepthError(string first, string link) =>
        Refused("{{ " + first + Repeat(link, 100_000) + " }}", "expression nested deeper than 500 levels (template line 1)");

    [Theory]
    [InlineData("{{ ns.l }}")]
    [InlineData("{{ ns.l|tojson }}")]
    [InlineData("{{ ns.l == ns.l }}")]
    public void Render_ValueNestedThousandDeep_IsDepthError(string use) =>
        Refused("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}" + use, "nested deeper than 500 levels");

    [Theory]
    [InlineData("{{ range(1000000000)|length }}", "range(1000000000) has 1000000000 items; the sandbox allows at most 100,000")]
    [InlineData("{{ range(-9223372036854775807, 9223372036854775807)|length }}", "the sandbox allows at most 100,000")]
    [InlineData("{{ range(10, 0, 0)|list }}", "range() arg 3 must not be zero")]
    [InlineData("{{ range(0, 10, 0)|list }}", "range() arg 3 must not be zero")]
    [InlineData("{{ range('3') }}", "range() argument 1 must be an integer, not str")]
    [InlineData("{{ range() }}", "range expected 1 to 3 arguments, got 0")]
    public void Range_TooLargeOrStepZero_Raises(string source, string expected) => Refused(source, expected);

    [Fact]
    public void Range_NestedLoops_HitIterationLimit() =>
        Refused("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "more than 1,000,000 loop iterations");

    [Fact]
    public void Render_RepeatedListWork_HitsWorkBudget() =>
        Refused("{% for i in range(100000) %}{{ range(100000)|select|list|length }}{% endfor %}", "rendering takes more than 100,000,000 steps");

    [Theory]
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}", "exceeds the limit of 16,777,216 OR rendering takes more than")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "exceeds the limit of 16,777,216 OR rendering takes more than")]
    [InlineData("{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s.replace('a', 'aa') %}{% endfor %}", "exceeds the limit of 16,777,216 OR rendering takes more than")]
    [InlineData("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "a list of 1,048,576 items exceeds the limit of 1,000,000")]
    [InlineData("{{ 'ab' * 10**12 }}", "a string of 2,000,000,000,000 characters exceeds the limit of 16,777,216")]
    [InlineData("{{ 10**12 * 'ab' }}", "a string of 2,000,000,000,000 characters")]
    [InlineData("{{ [1, 2] * 10**12 }}", "a list of 2,000,000,000,000 items")]
    [InlineData("{{ [1]|tojson(indent=1000000000) }}", "exceeds the limit of 16,777,216")]
    [InlineData("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "the output would exceed 16,777,216 characters")]
    public void Render_RunawayGrowth_IsLengthError(string source, string expected) => Refused(source, expected);

    [Theory]
    [InlineData("{{ 1 / 0 }}", "division by zero")]
    [InlineData("{{ 1 // 0 }}", "integer division by zero")]
    [InlineData("{{ 1 % 0 }}", "integer modulo by zero")]
    [InlineData("{{ 1.5 / 0 }}", "float division by zero")]
    [InlineData("{{ 1 // 0.0 }}", "float division by zero")]
    [InlineData("{{ 1.0 % 0 }}", "float modulo by zero")]
    [InlineData("{{ 2 ** 64 }}", "2 ** 64 overflows a 64-bit integer")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "overflows a 64-bit integer")]
    [InlineData("{{ 1 }}\n{{ 99999999999999999999 }}", "integer 99999999999999999999 does not fit in 64 bits at line 2")]
    [InlineData("{{ 'a'.replace('a') }}", "'replace()' is missing an argument")]
    [InlineData("{{ 'a'|replace('a') }}", "filter 'replace' is missing an argument")]
    public void Render_ArithmeticErrors_RaiseAsPython(string source, string expected) => Refused(source, expected);

    [Fact]
    public void Errors_NameTheTemplateLine()
    {
        Refused("{{ 'ok' }}\n\n{{ 1 / 0 }}", "division by zero (template line 3)");
        Refused("{% for m in messages %}\n{% if m.role == 'user' %}\n{{ m.content / 0 }}\n{% endif %}\n{% endfor %}", "(template line 3)");
        Refused("{% if false %}\n{% elif 1 // 0 %}\n{% endif %}", "integer division by zero (template line 2)");
        // Inside an open bracket '}}' does not end the tag (a nested dict literal ends in '}}'), so the tag is unclosed.
        Refused("{{ 1 }}\n{{ (1 + }}", "tag opened at line 2");
        Refused("x\n{{ 'a' ", "tag opened at line 2");
    }

    [Theory]
    [InlineData("{{ 7 // -2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }}", "-4 -4 -2 1024 0.5 3.5")]
    [InlineData("{{ 'ab' * 3 }}|{{ 2 * 'x' }}|{{ [1] * 2 }}|{{ 'ab' * -1 }}", "ababab|xx|[1, 1]|")]
    [InlineData("{{ 'abc'.replace('', '-') }} {{ 'aXbX'|replace('X', 'YY') }}", "-a-b-c- aYYbYY")]
    [InlineData("{{ range(10, 0, -3)|list }} {{ range(3)|list }} {{ range(2, 4)|list }} {{ range(5, 1)|list }}", "[10, 7, 4, 1] [0, 1, 2] [2, 3] []")]
    [InlineData("{% set ns = namespace(a=[1, {'b': 'c'}]) %}{{ ns|tojson }} {{ ns.a|tojson(indent=2) }}", "{\"a\": [1, {\"b\": \"c\"}]} [\n  1,\n  {\n    \"b\": \"c\"\n  }\n]")]
    [InlineData("{% set x = [1, 2] %}{{ [x, x]|tojson }} {{ [x, x] }}", "[[1, 2], [1, 2]] [[1, 2], [1, 2]]")]
    [InlineData("{{ ['a', 'b', 'c']|join(', ') }}|{{ [1, 2]|join }}", "a, b, c|12")]
    [InlineData("{{ 0 and 1 }} {{ 0 or 2 }} {{ 3 and 4 }} {{ '' or '' }}|", "0 2 4 |")]
    public void Render_PythonSemantics_Kept(string source, string expected) => Assert.Equal(expected, Render(source));

    [Fact]
    public void Render_RealTemplates_StayFarBelowTheLimits()
    {
        // The deepest and longest real templates in the fixtures nest far from the limits: also with a long conversation.
        var messages = Enumerable.Range(0, 200).Select(i => new ChatMessage(i % 2 == 0 ? "user" : "assistant", Repeat("word ", 2000))).ToList();
        int rendered = 0, total = 0;
        using var cases = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixtures.Path("chat-templates", "cases.json")));
        foreach (var c in cases.RootElement.GetProperty("cases").EnumerateArray())
        {
            total++;
            string name = c.GetProperty("name").GetString()!, source = c.GetProperty("template").GetString()!;
            try
            {
                rendered += new ChatTemplate(source, name).Render(messages, true, "<s>", "</s>").Length > 0 ? 1 : 0;
            }
            catch (TemplateException error) when (error.Message.Contains("template raised"))
            {
                rendered++; // templates that insist on their own role order say so through raise_exception
            }
        }
        output.WriteLine($"{rendered} templates rendered 200 messages of 10,000 characters within the limits");
        Assert.Equal(total, rendered);
    }
}
