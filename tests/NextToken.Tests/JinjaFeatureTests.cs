using NextToken.Chat;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// The Jinja constructs chat templates use, one at a time. Each expected text is what Jinja2 3.1.6
/// renders when set up as transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment,
/// trim_blocks, lstrip_blocks, loopcontrols, {% generation %}, tojson = json.dumps(ensure_ascii=False, …),
/// strftime_now pinned to 2026-01-01) with messages = [], tools = None, documents = None.
/// </summary>
public class JinjaFeatureTests(ITestOutputHelper output)
{
    private static string Render(string source) =>
        new ChatTemplate(source, "t").Render(new ChatConversation([]), addGenerationPrompt: true, "<s>", "</s>", new DateTime(2026, 1, 1));

    [Theory]
    [InlineData("{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}", "Hello A! Hello B? Hello C.")]
    [InlineData("{% macro m(a, b=a*2) %}{{ a }},{{ b }}{% endmacro %}{{ m(1) }}|{{ m(1, 5) }}", "1,2|1,5")]
    [InlineData("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1)|int) }}{% endif %}{% endmacro %}{{ fact(6) }}", "720")]
    [InlineData("{% macro tree(d, depth=0) %}{% for k, v in d|items %}{{ '  ' * depth }}{{ k }}\n{% if v is mapping %}{{ tree(v, depth + 1) }}{% endif %}{% endfor %}{% endmacro %}{{ tree({'a': {'b': {'c': 1}}, 'd': 2}) }}", "a\n  b\n    c\nd\n")]
    [InlineData("{% set top = 'seen' %}{% macro m() %}[{{ top }}|{{ x is defined }}]{% endmacro %}{% for x in [1] %}{{ m() }}{% endfor %}", "[seen|False]")]
    [InlineData("{% macro m() %}{% set inner = 1 %}{% endmacro %}{{ m() }}{{ inner is defined }}", "False")]
    [InlineData("{%- macro m() -%}\n  text\n{%- endmacro -%}\n[{{ m() }}]", "[text]")]
    [InlineData("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", "13")]
    [InlineData("{% for x in [1, 2] %}{% for y in [1, 2, 3] %}{% if y == 2 %}{% break %}{% endif %}{{ x }}{{ y }} {% endfor %}{% endfor %}", "11 21 ")]
    [InlineData("{% for x in [] %}{% break %}{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for x in ['a', 'b', 'c'] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}{{ loop.cycle('-', '+') }}{% endfor %}", "<a>b-a<b>c+b<c>-")]
    [InlineData("{% for x in [1, 2, 3, 4] if x is even %}{{ loop.previtem }}/{{ x }}/{{ loop.nextitem }}/{{ loop.length }};{% endfor %}", "/2/4/2;2/4//2;")]
    [InlineData("{% for x in [1, 2] %}{{ loop.depth }}{{ loop.depth0 }}{{ loop.revindex }}{{ loop.revindex0 }}{% endfor %}", "10211010")]
    [InlineData("{% generation %}{{ 'assistant text' }}{% endgeneration %}!", "assistant text!")]
    [InlineData("{% for m in [1, 2] %}{% generation %}{{ m }}{% if m == 1 %}!{% endif %}{% endgeneration %}{% endfor %}", "1!2")]
    [InlineData("{% set block %}a {{ 1 + 1 }} b{% endset %}[{{ block }}]{{ block|length }}", "[a 2 b]5")]
    [InlineData("{{ 'a'|safe + '<b>' }}|{{ '<a>' + '&'|safe }}|{{ ('q'|safe) ~ '\"' }}|{{ ('x'|safe + 'y') is string }}|{{ '<i>'|e }}|{{ ('<i>'|e)|e }}|{{ '<i>'|forceescape }}", "a&lt;b&gt;|&lt;a&gt;&|q\"|True|&lt;i&gt;|&lt;i&gt;|&lt;i&gt;")]
    [InlineData("{{ \"Use '\"|safe + {'k': \"it's\"}|tojson + \"'\"|safe }}", "Use '{&#34;k&#34;: &#34;it&#39;s&#34;}'")]
    [InlineData("{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'a\nb\n'|indent('> ', first=true) }}|{{ ''|indent(3, true) }}", "a\n    b\n\n    c|  a\n  b|a\n  \n  b|> a\n> b\n|   ")]
    [InlineData("{{ {'a': 1, 'b': [1, 2]}|tojson(indent=2)|indent(4) }}", "{\n      \"a\": 1,\n      \"b\": [\n        1,\n        2\n      ]\n    }")]
    [InlineData("{{ ['b', 'A', 'a', 'B', 'c']|unique|list }}{{ ['b', 'A', 'a', 'B']|unique(case_sensitive=true)|list }}{{ [{'n': 1}, {'n': 2}, {'n': 1}]|unique(attribute='n')|list }}", "['b', 'A', 'c']['b', 'A', 'a', 'B'][{'n': 1}, {'n': 2}]")]
    [InlineData("{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'c']|sort }}{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}{{ [3, 1, 2]|sort(reverse=true) }}{{ [{'n': 2}, {'n': 1}]|sort(attribute='n')|map(attribute='n')|list }}", "[1, 2, 3]['A', 'b', 'c']['A', 'b', 'c'][3, 2, 1][1, 2]")]
    [InlineData("{% for k, v in {'b': 1, 'a': 2}|dictsort %}{{ k }}{{ v }}{% endfor %}|{% for k, v in {'b': 1, 'a': 2, 'c': 0}|dictsort(by='value', reverse=true) %}{{ k }}{{ v }}{% endfor %}|{{ {'B': 1, 'a': 2}|dictsort|tojson }}", "a2b1|a2b1c0|[[\"a\", 2], [\"B\", 1]]")]
    [InlineData("{{ [1, 2, 3]|sum }}{{ [{'n': 2}, {'n': 3}]|sum(attribute='n') }}{{ [1.5, 2]|sum(start=10) }}|{{ [3, 1, 2]|min }}{{ [3, 1, 2]|max }}{{ ['b', 'a']|max }}|{{ [1, 2]|reverse|list }}{{ 'abc'|reverse }}", "6513.5|13b|[2, 1]cba")]
    [InlineData("{{ 2.5|round }}{{ 3.14159|round(2) }}{{ 2.1|round(method='ceil') }}{{ -2.5|round }}{{ 7|round }}", "2.03.143.0-2.07")]
    [InlineData("{{ [{'a': 1}, {'b': 2}]|map(attribute='a', default=0)|list }}{{ [{'t': 'x'}, {'t': 'y'}]|selectattr('t', 'equalto', 'x')|list }}{{ [{'t': 'x'}, {}]|rejectattr('t', 'defined')|list }}", "[1, 0][{'t': 'x'}][{}]")]
    [InlineData("{{ {'é': 'ü', 'k': [1, 2.5, none, true]}|tojson }}|{{ {'é': 'ü'}|tojson(ensure_ascii=true) }}|{{ {'a': [1, 2], 'b': {}}|tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ [[], {}]|tojson(indent=2) }}|{{ 'tab\tquote\"'|tojson }}", "{\"é\": \"ü\", \"k\": [1, 2.5, null, true]}|{\"\\u00e9\": \"\\u00fc\"}|{\"a\":[1,2],\"b\":{}}|{\"a\": 2, \"b\": 1}|[\n  [],\n  {}\n]|\"tab\\tquote\\\"\"")]
    [InlineData("{{ [1.0, 1e16, 1e15, 0.0001, 0.00001, 1.5e-7, 123456789.125, -0.0, 1/3, 2.5e300, 100.0] }}|{{ [1e16, 0.00001]|tojson }}|{{ 1e22 }}", "[1.0, 1e+16, 1000000000000000.0, 0.0001, 1e-05, 1.5e-07, 123456789.125, -0.0, 0.3333333333333333, 2.5e+300, 100.0]|[1e+16, 1e-05]|1e+22")]
    [InlineData("{{ ' a  b c '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,c'.split(',', 1) }}{{ ' a b c'.split(none, 1) }}{{ 'a\nb\r\nc\n'.splitlines() }}{{ '-'.join(['x', 'y']) }}{{ 'hello'.find('l') }}{{ 'hello'.count('l') }}{{ 'x'.count('') }}", "['a', 'b', 'c']['a', 'b', '', 'c']['a', 'b,c']['a', 'b c']['a', 'b', 'c']x-y222")]
    [InlineData("{{ '  x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\n\nhi\n'.lstrip('\n') }}|{{ 'hi!!'.rstrip('!') }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}|{{ '42'.isdigit() }}{{ 'a4'.isalpha() }}{{ 'ab'.islower() }}{{ 'AB'.isupper() }}{{ ' '.isspace() }}|{{ 'Hello World'.upper() }}{{ 'Hello World'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}", "x|hi|hi\n|hi|TrueTrue|TrueFalseTrueTrueTrue|HELLO WORLDhello worldHello WorldHello")]
    [InlineData("{{ [1, 2, 3][::-1] }}{{ 'abc'[::-1] }}{{ [1, 2, 3, 4][1:3] }}{{ [1, 2, 3, 4][-2:] }}{{ [1, 2, 3, 4][::2] }}{{ 'abcdef'[1:-1] }}", "[3, 2, 1]cba[2, 3][3, 4][1, 3]bcde")]
    [InlineData("{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ 'a' is iterable }}{{ [] is iterable }}{{ 1 is iterable }}{{ undefined_thing is iterable }}{{ none is iterable }}{{ namespace(a=1) is mapping }}{{ {} is iterable }}{{ 1 is number }}{{ false is false }}{{ true is boolean }}", "FalseTrueTrueTrueTrueTrueFalseTrueFalseFalseTrueTrueTrueTrue")]
    [InlineData("{% set ns = namespace(items=[], n=0) %}{% for x in [1, 2, 3] %}{% set ns.items = ns.items + [x * 2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.items }}{{ ns.n }}", "[2, 4, 6]6")]
    [InlineData("{{ {'a': 1, 'b': [1, 2]} == {'b': [1, 2], 'a': 1} }}{{ {'a': 1} == {'a': 2} }}{{ [1, {'x': 'y'}] == [1, {'x': 'y'}] }}{{ 1 == 1.0 }}{{ 'a' == 'a'|safe }}", "TrueFalseTrueTrueTrue")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('z', 'dflt') }}{{ {'a': 1}.get('z') }}{{ {'a': 1}.keys()|list }}{{ {'a': 1}.values()|list }}", "a=1;b=2;1dfltNone['a'][1]")]
    [InlineData("{{ 'x' ~ 1 ~ none ~ [1] }}{{ '-' * 3 }}{{ 3 * 'ab' }}{{ [0] * 2 }}", "x1None[1]---ababab[0, 0]")]
    [InlineData("{% for x in 'ab' %}{{ x }}{% endfor %}{% for k in {'p': 1, 'q': 2} %}{{ k }}{% endfor %}", "abpq")]
    [InlineData("{{ tools is none }}{{ documents is none }}{{ tools is defined }}{{ strftime_now('%d %b %Y') }}{{ strftime_now('%Y-%m-%d %A %B') }}", "TrueTrueTrue01 Jan 20262026-01-01 Thursday January")]
    [InlineData("{{ messages|length }}{{ messages|tojson }}", "0[]")]
    [InlineData("{{ ' Default=' ~ 5 ~ '.' }}{{ [('maximum', 'Maximum')]|first|first }}{% for f, n in [('a', 'A'), ('b', 'B')] %}{{ f }}{{ n }}{% endfor %}", " Default=5.maximumaAbB")]
    [InlineData("{{ [1, 'a', none, true, 1.5, {'k': 'v'}]|string }}{{ [1, 'it\\'s']|string|replace(\"'\", '\"') }}", "[1, 'a', None, True, 1.5, {'k': 'v'}][1, \"it\"s\"]")]
    [InlineData("{{ 'abc'|list }}{{ {'a': 1}|list }}{{ [1, 2]|first }}{{ [1, 2]|last }}{{ 'abc'|length }}{{ {'a': 1}|length }}", "['a', 'b', 'c']['a']1231")]
    [InlineData("{{ 10 // 3 }}{{ -7 // 2 }}{{ -7 % 3 }}{{ 7 / 2 }}{{ 2 ** 10 }}{{ 1 + 1.5 }}{{ -(3) }}", "3-423.510242.5-3")]
    [InlineData("{{ undefined_name }}[{{ none }}]{{ true }}{{ [none, false] }}", "[None]True[None, False]")]
    [InlineData("{% set d = {'items': 'key', 'type': 't'} %}{{ d.items is string }}{{ d['items'] }}{{ d.type }}{{ d.get('items') }}", "Falsekeytkey")]
    [InlineData("{{ none|selectattr('a')|list }}{{ none|rejectattr('a')|list }}{{ none|map(attribute='a')|list }}{{ none|select|list }}{{ [1, none]|first }}{{ [none]|last }}", "[][][][]1None")]
    [InlineData("{{ ('a', 1) }}{{ (1,) }}{{ [('a', 'b')] }}{{ {'b': 1, 'a': 2}|dictsort }}{{ ('a', 1) == ['a', 1] }}{{ ('a', 1) == ('a', 1) }}{{ (1, 2) + (3,) }}{{ (1, 2, 3)[1:] }}{{ ({'a': 1}|items|list)[0] }}{{ {'a': 1}.items()|list }}{{ (1, 2)|list }}{{ (1, 2)|tojson }}", "('a', 1)(1,)[('a', 'b')][('a', 2), ('b', 1)]FalseTrue(1, 2, 3)(2, 3)('a', 1)[('a', 1)][1, 2][1, 2]")]
    [InlineData("{{ 'Hi %s, you are %d.' % ('Ann', 30) }}|{{ '%s' % 'one' }}|{{ '%5.2f|%-6s|%05d|%+d|%x|%X|%o|%r|%%|%.2s' % (3.14159, 'ab', 42, 7, 255, 255, 8, 'q', 'xyz') }}|{{ '%(name)s=%(v)d' % {'name': 'n', 'v': 3} }}|{{ '%s and %s'|format('a', 'b') }}|{{ '%(a)s'|format(a=1) }}|{{ '%d' % 3.9 }}|{{ '%s' % [1, 2] }}|{{ '%s' % (none,) }}|{{ '%c' % 65 }}|{{ '% d' % 5 }}", "Hi Ann, you are 30.|one| 3.14|ab    |00042|+7|ff|FF|10|'q'|%|xy|n=3|a and b|1|3|[1, 2]|None|A| 5")]
    [InlineData("{{ [1, 1.0, true, 2, 'a', 'A', none, none, (1, 'x'), (1, 'x')]|unique|list }}", "[1, 2, 'a', None, (1, 'x')]")]
    public void Render_Construct_EqualsJinja2(string source, string expected) => Assert.Equal(expected, Render(source));

    /// <summary>Where Jinja2 raises, so does the interpreter, with a one-line message naming the cause and the template line.</summary>
    [Theory]
    [InlineData("{{ x.y }}", "'x' is undefined: cannot read its 'y' (template line 1)")]
    [InlineData("{{ x['y'] }}", "'x' is undefined: cannot read its ['y'] (template line 1)")]
    [InlineData("{{ {'a': 1}.b.c }}", "'dict object' has no attribute 'b': cannot read its 'c'")]
    [InlineData("{{ x + 1 }}", "'x' is undefined: cannot use it with '+'")]
    [InlineData("{{ {'a': x}|tojson }}", "tojson: 'x' is undefined")]
    [InlineData("\n{{ 'abc'.nomethod() }}", "str has no method 'nomethod' (template line 2)")]
    [InlineData("{{ undefined_fn() }}", "unknown function 'undefined_fn'")]
    [InlineData("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", "macro 'm' takes not more than 1 argument(s), got 2")]
    [InlineData("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }}", "macro 'm' takes no keyword argument 'b'")]
    [InlineData("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=1) }}", "macro 'm' got multiple values for argument 'a'")]
    [InlineData("{% macro m(a) %}\n\n{{ a.b }}{% endmacro %}{{ m() }}", "'a' is undefined (macro 'm' was called without it): cannot read its 'b' (template line 3)")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested deeper than 500 levels")]
    [InlineData("a\n{% break %}", "'{% break %}' outside a for loop at line 2")]
    [InlineData("{% for x in [1] %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}", "'{% continue %}' outside a for loop")]
    [InlineData("{% for x in [1] %}{% generation %}{% break %}{% endgeneration %}{% endfor %}", "'{% break %}' outside a for loop")]
    [InlineData("line 1\n{% include 'other.jinja' %}", "unsupported tag '{% include %}' at line 2")]
    [InlineData("\n\n{{ 'a'|frobnicate }}", "unsupported filter 'frobnicate' (template line 3)")]
    [InlineData("{% if x is frobnicated %}{% endif %}", "unsupported test 'frobnicated' (template line 1)")]
    [InlineData("{{ {'a': 1}|tojson(separators=(',',)) }}", "tojson separators must be a pair of strings")]
    [InlineData("{{ 'a'|indent(100000) }}", "indent width must be between 0 and 1000")]
    [InlineData("{{ 'a,b'.split('') }}", "split(): empty separator")]
    [InlineData("{% for x in none %}{% endfor %}", "None is not iterable")]
    [InlineData("{{ none|length }}", "None has no length")]
    [InlineData("{{ 'a' in none }}", "None is not iterable")]
    [InlineData("{{ none|list }}", "None is not iterable")]
    [InlineData("{{ {'a': 1}.pop('a') }}", "dict.pop() is not available")]
    [InlineData("{{ '%s %s' % ('a',) }}", "not enough arguments for format string")]
    [InlineData("{{ '%s' % ('a', 'b') }}", "not all arguments converted during string formatting")]
    [InlineData("{{ '%q' % 1 }}", "unsupported format character 'q'")]
    [InlineData("{{ [[1], [1]]|unique|list }}", "unique: unhashable type: 'list'")]
    [InlineData("{{ (',' * 2000000).split(',')|length }}", "a list of 1,000,001 items exceeds the limit of 1,000,000")]
    [InlineData("{{ ('\\n' * 2000000).splitlines()|length }}", "a list of 1,000,001 items exceeds the limit")]
    [InlineData("{{ ('a ' * 2000000).split()|length }}", "a list of 1,000,001 items exceeds the limit")]
    public void Render_Error_IsOneLineNamingCauseAndLine(string source, string expected)
    {
        var error = Assert.Throws<TemplateException>(() => Render(source));
        output.WriteLine(error.Message);
        Assert.Contains(expected, error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Null(error.Raised);
    }

    [Fact]
    public void RaiseException_MessageIsTheTemplatesText()
    {
        var error = Assert.Throws<TemplateException>(() => Render("{% if true %}\n{{ raise_exception('Roles must alternate: ' ~ 1) }}{% endif %}"));
        output.WriteLine(error.Message);
        Assert.Equal("Roles must alternate: 1", error.Raised);
        Assert.Equal("t: template raised: Roles must alternate: 1 (template line 2)", error.Message);
    }

    /// <summary>Python's float repr, which {{ x }} and tojson print, against values Python printed.</summary>
    [Theory]
    [InlineData(1.0, "1.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(1e16, "1e+16")]
    [InlineData(9999999999999998.0, "9999999999999998.0")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(123456.789e3, "123456789.0")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00001, "1e-05")]
    [InlineData(-1.5e-7, "-1.5e-07")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(0.0, "0.0")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(2.5, "2.5")]
    [InlineData(1.0 / 3, "0.3333333333333333")]
    public void FormatFloat_IsPythonRepr(double value, string python) => Assert.Equal(python, Values.FormatFloat(value));

    /// <summary>|unique keeps a set as Jinja does: 100,000 distinct items take milliseconds (a list scan would take minutes).</summary>
    [Fact]
    public void Unique_HundredThousandItems_IsLinear()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("100000", Render("{{ (range(100000)|list + range(100000)|list)|unique|list|length }}"));
        output.WriteLine($"{clock.ElapsedMilliseconds} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
    }
}
