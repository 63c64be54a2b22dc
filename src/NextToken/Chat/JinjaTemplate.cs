using System.Globalization;
using System.Text;

namespace NextToken.Chat;

/// <summary>
/// Jinja's undefined value: prints as nothing, is false, iterates as nothing, and is what missing
/// variables and keys give; reading an attribute or item of it is an error, as in Jinja.
/// </summary>
internal sealed class Undefined(string? hint = null)
{
    public static readonly Undefined Value = new();

    /// <summary>What was missing, for the error when the value is used ("'x' is undefined").</summary>
    public string Hint => hint ?? "the value is undefined";

    public override string ToString() => "";
}

/// <summary>Jinja's <c>namespace()</c>: an object whose attributes <c>{% set ns.x = … %}</c> may change from inside loops.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Fields { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// markupsafe's Markup, what <c>|safe</c> makes: text marked as HTML. Adding a plain string to it
/// (either side) escapes the plain string, so <c>"a"|safe + s</c> HTML-escapes s as Jinja2 does.
/// </summary>
internal sealed class Markup(string text)
{
    public string Text { get; } = text;

    public override string ToString() => Text;
}

/// <summary>A Python tuple: a list everywhere except where Python tells them apart (repr prints parentheses, a tuple never equals a list).</summary>
internal sealed class PyTuple(IEnumerable<object?> items) : List<object?>(items);

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopInfo(List<object?> items, int index)
{
    public object? Get(string name) => name switch
    {
        "index" => (long)index + 1,
        "index0" => (long)index,
        "revindex" => (long)(items.Count - index),
        "revindex0" => (long)(items.Count - index - 1),
        "first" => index == 0,
        "last" => index == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => index > 0 ? items[index - 1] : new Undefined("there is no previous item"),
        "nextitem" => index + 1 < items.Count ? items[index + 1] : new Undefined("there is no next item"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" => (JinjaFunction)((args, _) => args.Count == 0
            ? throw new TemplateException("template: loop.cycle() needs at least one argument")
            : args[index % args.Count]),
        _ => new Undefined($"the loop has no attribute '{name}'"),
    };
}

internal delegate object? JinjaFunction(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>
/// A compiled Jinja template, for the subset chat templates use: <c>if/elif/else</c>,
/// <c>for</c> (with <c>loop</c>, unpacking, a filter condition, <c>else</c>, <c>break</c> and
/// <c>continue</c>), <c>set</c> (also on a namespace, and as a block), <c>macro</c> (recursive too),
/// transformers' <c>generation</c> block, Python-like expressions, the filters and tests Hugging Face
/// templates call, and Hugging Face's globals <c>raise_exception</c> and <c>strftime_now</c>.
/// Rendering follows Jinja2 3.1 as transformers' apply_chat_template configures it (trim_blocks,
/// lstrip_blocks, loop controls, tojson as json.dumps); anything else is an error naming it and the line.
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
        var renderer = new Renderer(globals, _source);
        renderer.Run(_nodes);
        return renderer.Output.ToString();
    }

    /// <summary>What a statement tells the loop around it: go on, or a <c>{% break %}</c> / <c>{% continue %}</c> was reached.</summary>
    private enum Flow { Normal, Break, Continue }

    private sealed class Renderer(Dictionary<string, object?> globals, string source)
    {
        // A macro body sees the template's top-level variables and its arguments, not the caller's loop variables (as Jinja).
        private List<Dictionary<string, object?>> _scopes = [globals];
        private long _iterations, _work;
        private int _depth;

        /// <summary>Where text goes: the rendering, or a macro's or {% set %} block's own text while it runs.</summary>
        public StringBuilder Output { get; private set; } = new();

        public Flow Run(List<Node> nodes)
        {
            // Bodies count towards the depth bound too: recursive macros nest bodies within bodies.
            if (++_depth > JinjaLimits.MaxDepth)
                throw new TemplateException($"template: blocks and macro calls nested deeper than {JinjaLimits.MaxDepth} levels");
            try
            {
                foreach (Node node in nodes)
                {
                    Flow flow;
                    try
                    {
                        flow = Execute(node);
                    }
                    catch (TemplateException error) when (!error.Located)
                    {
                        throw Locate(error, node.Position);
                    }
                    if (flow != Flow.Normal) return flow;
                }
                return Flow.Normal;
            }
            finally
            {
                _depth--;
            }
        }

        /// <summary>The error with the line of the innermost statement it came from; outer statements leave it as it is.</summary>
        private TemplateException Locate(TemplateException error, int position) =>
            new($"{error.Message} (template line {TemplateException.LineOf(source, position)})") { Located = true, Raised = error.Raised };

        private Flow Execute(Node node)
        {
            switch (node)
            {
                case TextNode text:
                    Write(text.Text);
                    break;
                case PrintNode print:
                    Write(Values.ToText(Eval(print.Value)));
                    break;
                case LoopControlNode control:
                    return control.Break ? Flow.Break : Flow.Continue;
                case BlockNode block:
                    return Run(block.Body);
                case MacroNode macro:
                    _scopes[^1][macro.Name] = (JinjaFunction)((args, kwargs) => CallMacro(macro, args, kwargs));
                    break;
                case SetBlockNode setBlock:
                    _scopes[^1][setBlock.Name] = Capture(() => Run(setBlock.Body), _scopes);
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
                    if (chosen is not null) return Run(chosen);
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
            return Flow.Normal;
        }

        /// <summary>The text <paramref name="body"/> writes, run with the given scopes; the output and scopes are restored after.</summary>
        private string Capture(Action body, List<Dictionary<string, object?>> scopes)
        {
            (StringBuilder savedOutput, List<Dictionary<string, object?>> savedScopes) = (Output, _scopes);
            (Output, _scopes) = (new StringBuilder(), scopes);
            try
            {
                body();
                return Output.ToString();
            }
            finally
            {
                (Output, _scopes) = (savedOutput, savedScopes);
            }
        }

        /// <summary>A macro call, bound as Python binds arguments (positional, then by name, then defaults, which may use earlier parameters).</summary>
        private string CallMacro(MacroNode macro, List<object?> args, Dictionary<string, object?> kwargs)
        {
            if (args.Count > macro.Parameters.Count)
                throw new TemplateException($"template: macro '{macro.Name}' takes not more than {macro.Parameters.Count} argument(s), got {args.Count}");
            foreach (string key in kwargs.Keys)
            {
                int at = macro.Parameters.FindIndex(p => p.Name == key);
                if (at < 0) throw new TemplateException($"template: macro '{macro.Name}' takes no keyword argument '{key}'");
                if (at < args.Count) throw new TemplateException($"template: macro '{macro.Name}' got multiple values for argument '{key}'");
            }
            var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
            return Capture(() =>
            {
                for (int i = 0; i < macro.Parameters.Count; i++)
                {
                    var (name, fallback) = macro.Parameters[i];
                    scope[name] = i < args.Count ? args[i]
                        : kwargs.TryGetValue(name, out object? given) ? given
                        : fallback is not null ? Eval(fallback)
                        : new Undefined($"'{name}' is undefined (macro '{macro.Name}' was called without it)");
                }
                Run(macro.Body);
            }, [_scopes[0], scope]);
        }

        private void Write(string text)
        {
            if ((long)Output.Length + text.Length > JinjaLimits.MaxStringLength)
                throw new TemplateException($"template: the output would exceed {JinjaLimits.MaxStringLength:N0} characters");
            Output.Append(text);
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
                    scope["loop"] = new LoopInfo(items, i);
                    if (Run(loop.Body) == Flow.Break) break;
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
            return new Undefined($"'{name}' is undefined");
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
            ListExpr { IsTuple: true } tuple => new PyTuple(tuple.Items.Select(Eval)),
            ListExpr list => list.Items.Select(Eval).ToList(),
            DictExpr dict => dict.Items.Aggregate(new Dictionary<string, object?>(), (d, kv) => { d[Values.ToText(Eval(kv.Key))] = Eval(kv.Value); return d; }),
            GetAttr attr => Values.GetAttribute(Eval(attr.Target), attr.Name),
            GetItem item => Values.GetItem(ChargeString(Eval(item.Target)), Eval(item.Index)),
            Slice slice => Values.Slice(EvalCharged(slice.Target), EvalOptional(slice.Start), EvalOptional(slice.Stop), EvalOptional(slice.Step)),
            Call call => Invoke(call),
            FilterExpr filter => Filters.Apply(filter.Name, EvalCharged(filter.Value), filter.Args.Select(Eval).ToList(), filter.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value))),
            TestExpr test => Filters.Test(test.Name, Eval(test.Value), test.Args.Select(Eval).ToList()) != test.Negated,
            Unary { Op: "not" } u => !Values.Truthy(Eval(u.Operand)),
            Unary u => Values.Negate(Eval(u.Operand)),
            Binary { Op: "and" or "or" } b => ShortCircuit(b),
            Binary b => Values.BinaryOp(b.Op, EvalCharged(b.Left), EvalCharged(b.Right)),
            Conditional c => Values.Truthy(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? Undefined.Value : Eval(c.Else),
            _ => throw new TemplateException($"template: cannot evaluate {expr.GetType().Name}"),
        };

        private object? Invoke(Call call)
        {
            object? function;
            if (call.Function is GetAttr method)
            {
                object? target = Eval(method.Target);
                function = Values.GetAttribute(target, method.Name);
                if (function is Undefined)
                    throw new TemplateException($"template: {Values.TypeName(target)} has no method '{method.Name}'");
            }
            else function = Eval(call.Function);
            if (function is Undefined undefined && call.Function is Variable variable)
                throw new TemplateException($"template: unknown function '{variable.Name}' ({undefined.Hint})");
            return Values.Invoke(function, call.Args.Select(EvalCharged).ToList(), call.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value)));
        }

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
