using System.Globalization;
using System.Text;

namespace NextToken.Chat;

/// <summary>Jinja's undefined value: prints as nothing, is false, and is what missing keys give.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Value = new();
    public override string ToString() => "";
}

/// <summary>Jinja's <c>namespace()</c>: an object whose attributes <c>{% set ns.x = … %}</c> may change from inside loops.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Fields { get; } = new(StringComparer.Ordinal);
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopInfo(int index, int length)
{
    public object? Get(string name) => name switch
    {
        "index" => (long)index + 1,
        "index0" => (long)index,
        "revindex" => (long)(length - index),
        "revindex0" => (long)(length - index - 1),
        "first" => index == 0,
        "last" => index == length - 1,
        "length" => (long)length,
        _ => Undefined.Value,
    };
}

internal delegate object? JinjaFunction(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>
/// A compiled Jinja template, for the subset chat templates use: <c>if/elif/else</c>,
/// <c>for</c> (with <c>loop</c>, unpacking, a filter condition and <c>else</c>), <c>set</c> (also on
/// a namespace), Python-like expressions, the filters and tests Hugging Face templates call, and
/// Hugging Face's globals <c>raise_exception</c> and <c>strftime_now</c>. Rendering follows Jinja
/// 3.1 as Hugging Face configures it (trim_blocks, lstrip_blocks).
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _nodes;

    private JinjaTemplate(List<Node> nodes) => _nodes = nodes;

    public static JinjaTemplate Parse(string source) => new(new JinjaParser(JinjaLexer.Tokenize(source)).ParseTemplate());

    /// <summary>Renders with the given variables (strings, numbers, bools, null, lists and string-keyed dictionaries).</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, DateTime? now = null)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["raise_exception"] = (JinjaFunction)((args, _) => throw new TemplateException($"template raised: {Values.ToText(args.FirstOrDefault())}")),
            ["namespace"] = (JinjaFunction)((_, kwargs) =>
            {
                var ns = new Namespace();
                foreach (var (k, v) in kwargs) ns.Fields[k] = v;
                return ns;
            }),
            ["range"] = (JinjaFunction)((args, _) => Values.Range(args)),
            ["strftime_now"] = (JinjaFunction)((args, _) => Values.Strftime(now ?? DateTime.Now, Values.ToText(args[0]))),
        };
        foreach (var (key, value) in variables) globals[key] = Values.Import(value);
        var output = new StringBuilder();
        new Renderer(output, globals).Run(_nodes);
        return output.ToString();
    }

    private sealed class Renderer(StringBuilder output, Dictionary<string, object?> globals)
    {
        private readonly List<Dictionary<string, object?>> _scopes = [globals];

        public void Run(List<Node> nodes)
        {
            foreach (Node node in nodes)
            {
                switch (node)
                {
                    case TextNode text:
                        output.Append(text.Text);
                        break;
                    case PrintNode print:
                        output.Append(Values.ToText(Eval(print.Value)));
                        break;
                    case IfNode branch:
                        List<Node>? chosen = branch.Else;
                        foreach (var (condition, body) in branch.Branches)
                        {
                            if (Values.Truthy(Eval(condition)))
                            {
                                chosen = body;
                                break;
                            }
                        }
                        if (chosen is not null) Run(chosen);
                        break;
                    case ForNode loop:
                        RunFor(loop);
                        break;
                    case SetNode set:
                        object? value = Eval(set.Value);
                        if (set.Attribute is null) _scopes[^1][set.Name] = value;
                        else if (Lookup(set.Name) is Namespace ns) ns.Fields[set.Attribute] = value;
                        else throw new TemplateException($"template: cannot set '{set.Name}.{set.Attribute}': '{set.Name}' is not a namespace()");
                        break;
                }
            }
        }

        private void RunFor(ForNode loop)
        {
            var items = new List<object?>();
            var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
            _scopes.Add(scope);
            try
            {
                foreach (object? item in Values.Iterate(Eval(loop.Iterable)))
                {
                    if (loop.Filter is not null)
                    {
                        Bind(scope, loop.Targets, item);
                        if (!Values.Truthy(Eval(loop.Filter))) continue;
                    }
                    items.Add(item);
                }
                for (int i = 0; i < items.Count; i++)
                {
                    scope.Clear();
                    Bind(scope, loop.Targets, items[i]);
                    scope["loop"] = new LoopInfo(i, items.Count);
                    Run(loop.Body);
                }
            }
            finally
            {
                _scopes.RemoveAt(_scopes.Count - 1);
            }
            if (items.Count == 0 && loop.Else is not null) Run(loop.Else);
        }

        private static void Bind(Dictionary<string, object?> scope, string[] targets, object? item)
        {
            if (targets.Length == 1)
            {
                scope[targets[0]] = item;
                return;
            }
            var parts = Values.Iterate(item).ToList();
            if (parts.Count != targets.Length)
                throw new TemplateException($"template: cannot unpack {parts.Count} values into {targets.Length} names");
            for (int k = 0; k < targets.Length; k++) scope[targets[k]] = parts[k];
        }

        private object? Lookup(string name)
        {
            for (int s = _scopes.Count - 1; s >= 0; s--)
                if (_scopes[s].TryGetValue(name, out object? value)) return value;
            return Undefined.Value;
        }

        private object? Eval(Expr expr) => expr switch
        {
            Literal literal => literal.Value,
            Variable variable => Lookup(variable.Name),
            ListExpr list => list.Items.Select(Eval).ToList(),
            DictExpr dict => dict.Items.Aggregate(new Dictionary<string, object?>(), (d, kv) => { d[Values.ToText(Eval(kv.Key))] = Eval(kv.Value); return d; }),
            GetAttr attr => Values.GetAttribute(Eval(attr.Target), attr.Name),
            GetItem item => Values.GetItem(Eval(item.Target), Eval(item.Index)),
            Slice slice => Values.Slice(Eval(slice.Target), EvalOptional(slice.Start), EvalOptional(slice.Stop), EvalOptional(slice.Step)),
            Call call => Values.Invoke(Eval(call.Function), call.Args.Select(Eval).ToList(), call.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value))),
            FilterExpr filter => Filters.Apply(filter.Name, Eval(filter.Value), filter.Args.Select(Eval).ToList(), filter.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value))),
            TestExpr test => Filters.Test(test.Name, Eval(test.Value), test.Args.Select(Eval).ToList()) != test.Negated,
            Unary { Op: "not" } u => !Values.Truthy(Eval(u.Operand)),
            Unary u => Values.Negate(Eval(u.Operand)),
            Binary { Op: "and" } b => Values.Truthy(Eval(b.Left)) ? Eval(b.Right) : Eval(b.Left),
            Binary { Op: "or" } b => Values.Truthy(Eval(b.Left)) ? Eval(b.Left) : Eval(b.Right),
            Binary b => Values.BinaryOp(b.Op, Eval(b.Left), Eval(b.Right)),
            Conditional c => Values.Truthy(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? Undefined.Value : Eval(c.Else),
            _ => throw new TemplateException($"template: cannot evaluate {expr.GetType().Name}"),
        };

        private object? EvalOptional(Expr? expr) => expr is null ? null : Eval(expr);
    }
}
