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
    private readonly string _source;

    private JinjaTemplate(List<Node> nodes, string source) => (_nodes, _source) = (nodes, source);

    public static JinjaTemplate Parse(string source) => new(new JinjaParser(JinjaLexer.Tokenize(source), source).ParseTemplate(), source);

    /// <summary>
    /// Renders with the given variables (strings, numbers, bools, null, lists and string-keyed
    /// dictionaries). Hostile templates meet the bounds of <see cref="JinjaLimits"/>: an error
    /// naming the template line, never a hang, a stack overflow or an exhausted memory.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, DateTime? now = null)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["raise_exception"] = (JinjaFunction)((args, _) => throw new TemplateException($"template raised: {Values.ToText(args.FirstOrDefault())}") { Raised = Values.ToText(args.FirstOrDefault()) }),
            ["namespace"] = (JinjaFunction)((_, kwargs) =>
            {
                var ns = new Namespace();
                foreach (var (k, v) in kwargs) ns.Fields[k] = v;
                return ns;
            }),
            ["range"] = (JinjaFunction)((args, _) => Values.Range(args)),
            ["strftime_now"] = (JinjaFunction)((args, _) => Values.Strftime(now ?? DateTime.Now, Values.ToText(args.FirstOrDefault()))),
        };
        foreach (var (key, value) in variables) globals[key] = Values.Import(value);
        var output = new StringBuilder();
        new Renderer(output, globals, _source).Run(_nodes);
        return output.ToString();
    }

    private sealed class Renderer(StringBuilder output, Dictionary<string, object?> globals, string source)
    {
        private readonly List<Dictionary<string, object?>> _scopes = [globals];
        private long _iterations, _work;
        private int _depth;

        public void Run(List<Node> nodes)
        {
            foreach (Node node in nodes)
            {
                try
                {
                    Execute(node);
                }
                catch (TemplateException error) when (!error.Located)
                {
                    throw Locate(error, node.Position);
                }
            }
        }

        /// <summary>The error with the line of the innermost statement it came from; outer statements leave it as it is.</summary>
        private TemplateException Locate(TemplateException error, int position) =>
            new($"{error.Message} (template line {TemplateException.LineOf(source, position)})") { Located = true, Raised = error.Raised };

        private void Execute(Node node)
        {
            switch (node)
            {
                case TextNode text:
                    Write(text.Text);
                    break;
                case PrintNode print:
                    Write(Values.ToText(Eval(print.Value)));
                    break;
                case IfNode branch:
                    List<Node>? chosen = branch.Else;
                    foreach (var (condition, body, position) in branch.Branches)
                    {
                        bool holds;
                        try
                        {
                            holds = Values.Truthy(Eval(condition));
                        }
                        catch (TemplateException error) when (!error.Located)
                        {
                            throw Locate(error, position); // the elif's own line
                        }
                        if (holds)
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

        private void Write(string text)
        {
            if ((long)output.Length + text.Length > JinjaLimits.MaxStringLength)
                throw new TemplateException($"template: the output would exceed {JinjaLimits.MaxStringLength:N0} characters");
            output.Append(text);
        }

        private void CountIteration()
        {
            if (++_iterations > JinjaLimits.MaxLoopIterations)
                throw new TemplateException($"template: more than {JinjaLimits.MaxLoopIterations:N0} loop iterations");
        }

        /// <summary>Charges the characters or items an operation reads or makes against the rendering's work budget.</summary>
        private void Charge(object? value)
        {
            long size = value switch
            {
                string s => s.Length,
                System.Collections.ICollection c => c.Count,
                _ => 1,
            };
            _work += size;
            if (_work > JinjaLimits.MaxWork)
                throw new TemplateException($"template: rendering takes more than {JinjaLimits.MaxWork:N0} steps (characters and items processed)");
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
                    CountIteration();
                    if (loop.Filter is not null)
                    {
                        Bind(scope, loop.Targets, item);
                        if (!Values.Truthy(Eval(loop.Filter))) continue;
                    }
                    items.Add(item);
                }
                for (int i = 0; i < items.Count; i++)
                {
                    if (loop.Filter is not null) CountIteration(); // the filtering pass counted the others
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

        private object? Eval(Expr expr)
        {
            // Left-deep chains (a+b+c…, x|f|g…) are built by loops in the parser, so their depth is bounded here.
            if (++_depth > JinjaLimits.MaxDepth)
                throw new TemplateException($"template: expression nested deeper than {JinjaLimits.MaxDepth} levels");
            try
            {
                object? value = EvalNode(expr);
                if (expr is Binary or Call or FilterExpr or ListExpr or DictExpr or Slice) Charge(value);
                return value;
            }
            catch (ArgumentOutOfRangeException) when (expr is Call or FilterExpr or TestExpr)
            {
                // The filters, tests and methods read their arguments by position.
                string what = expr switch
                {
                    FilterExpr f => $"filter '{f.Name}'",
                    TestExpr t => $"test '{t.Name}'",
                    Call { Function: GetAttr g } => $"'{g.Name}()'",
                    Call { Function: Variable v } => $"'{v.Name}()'",
                    _ => "a call",
                };
                throw new TemplateException($"template: {what} is missing an argument");
            }
            finally
            {
                _depth--;
            }
        }

        private object? EvalNode(Expr expr) => expr switch
        {
            Literal literal => literal.Value,
            Variable variable => Lookup(variable.Name),
            ListExpr list => list.Items.Select(Eval).ToList(),
            DictExpr dict => dict.Items.Aggregate(new Dictionary<string, object?>(), (d, kv) => { d[Values.ToText(Eval(kv.Key))] = Eval(kv.Value); return d; }),
            GetAttr attr => Values.GetAttribute(Eval(attr.Target), attr.Name),
            GetItem item => Values.GetItem(ChargeString(Eval(item.Target)), Eval(item.Index)),
            Slice slice => Values.Slice(EvalCharged(slice.Target), EvalOptional(slice.Start), EvalOptional(slice.Stop), EvalOptional(slice.Step)),
            Call call => Values.Invoke(Eval(call.Function), call.Args.Select(EvalCharged).ToList(), call.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value))),
            FilterExpr filter => Filters.Apply(filter.Name, EvalCharged(filter.Value), filter.Args.Select(Eval).ToList(), filter.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value))),
            TestExpr test => Filters.Test(test.Name, Eval(test.Value), test.Args.Select(Eval).ToList()) != test.Negated,
            Unary { Op: "not" } u => !Values.Truthy(Eval(u.Operand)),
            Unary u => Values.Negate(Eval(u.Operand)),
            Binary { Op: "and" or "or" } b => ShortCircuit(b),
            Binary b => Values.BinaryOp(b.Op, EvalCharged(b.Left), EvalCharged(b.Right)),
            Conditional c => Values.Truthy(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? Undefined.Value : Eval(c.Else),
            _ => throw new TemplateException($"template: cannot evaluate {expr.GetType().Name}"),
        };

        /// <summary>Python's <c>and</c>/<c>or</c>: the left operand (evaluated once) when it decides, else the right.</summary>
        private object? ShortCircuit(Binary b)
        {
            object? left = Eval(b.Left);
            return Values.Truthy(left) == (b.Op == "or") ? left : Eval(b.Right);
        }

        /// <summary>An operand whose size the operation will walk (a filter's input, a string being joined): charged to the budget.</summary>
        private object? EvalCharged(Expr expr)
        {
            object? value = Eval(expr);
            Charge(value);
            return value;
        }

        /// <summary>Indexing a string walks its characters (to count code points).</summary>
        private object? ChargeString(object? value)
        {
            if (value is string) Charge(value);
            return value;
        }

        private object? EvalOptional(Expr? expr) => expr is null ? null : Eval(expr);
    }
}
