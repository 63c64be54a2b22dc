namespace NextToken.Chat;

// The syntax tree of a template: statements (nodes, each with the character position of its tag,
// for error messages) and expressions.
internal abstract record Node(int Position);
internal sealed record TextNode(string Text, int Position) : Node(Position);
internal sealed record PrintNode(Expr Value, int Position) : Node(Position);
internal sealed record IfNode(List<(Expr Condition, List<Node> Body, int Position)> Branches, List<Node>? Else, int Position) : Node(Position);
internal sealed record ForNode(string[] Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, int Position) : Node(Position);
internal sealed record SetNode(string Name, string? Attribute, Expr Value, int Position) : Node(Position);
internal sealed record SetBlockNode(string Name, List<Node> Body, int Position) : Node(Position);
internal sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body, int Position) : Node(Position);
internal sealed record LoopControlNode(bool Break, int Position) : Node(Position);
/// <summary>A block whose body renders as it is (transformers' <c>{% generation %}</c>, which marks the assistant's tokens).</summary>
internal sealed record BlockNode(List<Node> Body, int Position) : Node(Position);

internal abstract record Expr;
internal sealed record Literal(object? Value) : Expr;
internal sealed record Variable(string Name) : Expr;
internal sealed record ListExpr(List<Expr> Items, bool IsTuple = false) : Expr;
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items) : Expr;
internal sealed record GetAttr(Expr Target, string Name) : Expr;
internal sealed record GetItem(Expr Target, Expr Index) : Expr;
internal sealed record Slice(Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr;
internal sealed record Call(Expr Function, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
internal sealed record FilterExpr(Expr Value, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
internal sealed record TestExpr(Expr Value, string Name, List<Expr> Args, bool Negated) : Expr;
internal sealed record Unary(string Op, Expr Operand) : Expr;
internal sealed record Binary(string Op, Expr Left, Expr Right) : Expr;
internal sealed record Conditional(Expr Condition, Expr Then, Expr? Else) : Expr;

/// <summary>Recursive-descent parser for the Jinja subset chat templates use, with Jinja's operator precedence.</summary>
internal sealed class JinjaParser(List<JinjaToken> tokens, string source)
{
    private int _at;
    private int _nesting; // recursion depth, bounded so that hostile nesting is an error rather than a stack overflow
    private int _loops; // for loops around the current tag (a macro body starts again from none), for break/continue

    private JinjaToken Peek => tokens[_at];

    public List<Node> ParseTemplate()
    {
        List<Node> body = ParseBody(out string? end);
        if (end is not null) throw Error($"'{{% {end} %}}' without an opening tag");
        return body;
    }

    /// <summary>Nodes up to a block tag this level does not own (endif, else, …), whose name is returned.</summary>
    private List<Node> ParseBody(out string? terminator, params string[] terminators)
    {
        Enter();
        List<Node> nodes = ParseBodyNodes(out terminator, terminators);
        _nesting--;
        return nodes;
    }

    private List<Node> ParseBodyNodes(out string? terminator, string[] terminators)
    {
        var nodes = new List<Node>();
        while (true)
        {
            JinjaToken token = Peek;
            switch (token.Kind)
            {
                case TokenKind.End:
                    terminator = null;
                    if (terminators.Length > 0) throw Error($"template ended; expected '{{% {terminators[^1]} %}}'");
                    return nodes;
                case TokenKind.Text:
                    _at++;
                    nodes.Add(new TextNode(token.Value, token.Position));
                    break;
                case TokenKind.PrintStart:
                    _at++;
                    nodes.Add(new PrintNode(ParseExpression(), token.Position));
                    Expect(TokenKind.PrintEnd, "'}}'");
                    break;
                case TokenKind.BlockStart:
                    string name = tokens[_at + 1].Value;
                    if (terminators.Contains(name))
                    {
                        _at += 2;
                        terminator = name;
                        return nodes;
                    }
                    _at += 2;
                    nodes.Add(name switch
                    {
                        "if" => ParseIf(token.Position),
                        "for" => ParseFor(token.Position),
                        "set" => ParseSet(token.Position),
                        "macro" => ParseMacro(token.Position),
                        "break" or "continue" => ParseLoopControl(name, token.Position),
                        "generation" => ParseGeneration(token.Position),
                        _ => throw Error($"unsupported tag '{{% {name} %}}'", tokens[_at - 1].Position),
                    });
                    break;
                default:
                    throw Error($"unexpected {Describe(token)}");
            }
        }
    }

    private Node ParseIf(int position)
    {
        var branches = new List<(Expr, List<Node>, int)>();
        Expr condition = ParseExpression();
        int conditionAt = position;
        Expect(TokenKind.BlockEnd, "'%}'");
        while (true)
        {
            List<Node> body = ParseBody(out string? end, "elif", "else", "endif");
            branches.Add((condition, body, conditionAt));
            if (end == "elif")
            {
                conditionAt = tokens[_at - 2].Position;
                condition = ParseExpression();
                Expect(TokenKind.BlockEnd, "'%}'");
                continue;
            }
            List<Node>? elseBody = null;
            if (end == "else")
            {
                Expect(TokenKind.BlockEnd, "'%}'");
                elseBody = ParseBody(out _, "endif");
            }
            Expect(TokenKind.BlockEnd, "'%}'");
            return new IfNode(branches, elseBody, position);
        }
    }

    private Node ParseFor(int position)
    {
        var targets = new List<string> { ExpectName() };
        while (Accept(","))
            targets.Add(ExpectName());
        if (ExpectName() != "in") throw Error("expected 'in' in a for loop");
        Expr iterable = ParseOr(); // a bare 'if' after the iterable filters the loop
        Expr? filter = AcceptName("if") ? ParseOr() : null;
        Expect(TokenKind.BlockEnd, "'%}'");
        _loops++;
        List<Node> body = ParseBody(out string? end, "else", "endfor");
        _loops--;
        List<Node>? elseBody = null;
        if (end == "else")
        {
            Expect(TokenKind.BlockEnd, "'%}'");
            elseBody = ParseBody(out _, "endfor");
        }
        Expect(TokenKind.BlockEnd, "'%}'");
        return new ForNode(targets.ToArray(), iterable, filter, body, elseBody, position);
    }

    private Node ParseSet(int position)
    {
        string name = ExpectName();
        string? attribute = Accept(".") ? ExpectName() : null;
        if (attribute is null && Peek.Kind == TokenKind.BlockEnd)
        {
            // {% set x %}…{% endset %}: x is the body's text
            _at++;
            List<Node> body = ParseBody(out _, "endset");
            Expect(TokenKind.BlockEnd, "'%}'");
            return new SetBlockNode(name, body, position);
        }
        if (!Accept("=")) throw Error(attribute is null ? "expected '=' or '%}' after {% set NAME" : "expected '=' in {% set NAME.ATTRIBUTE = … %}");
        Expr value = ParseExpression();
        Expect(TokenKind.BlockEnd, "'%}'");
        return new SetNode(name, attribute, value, position);
    }

    private Node ParseMacro(int position)
    {
        string name = ExpectName();
        var parameters = new List<(string, Expr?)>();
        Expect("(");
        while (!Accept(")"))
        {
            string parameter = ExpectName();
            if (parameters.Any(p => p.Item1 == parameter)) throw Error($"macro '{name}' has two parameters named '{parameter}'");
            parameters.Add((parameter, Accept("=") ? ParseExpression() : null));
            if (!Accept(",")) { Expect(")"); break; }
        }
        Expect(TokenKind.BlockEnd, "'%}'");
        int loops = _loops;
        _loops = 0; // a macro's body is not inside the loop around its definition
        List<Node> body = ParseBody(out _, "endmacro");
        _loops = loops;
        AcceptName(name); // {% endmacro name %}
        Expect(TokenKind.BlockEnd, "'%}'");
        return new MacroNode(name, parameters, body, position);
    }

    private Node ParseLoopControl(string name, int position)
    {
        if (_loops == 0) throw Error($"'{{% {name} %}}' outside a for loop", position);
        Expect(TokenKind.BlockEnd, "'%}'");
        return new LoopControlNode(name == "break", position);
    }

    private Node ParseGeneration(int position)
    {
        Expect(TokenKind.BlockEnd, "'%}'");
        int loops = _loops;
        _loops = 0; // transformers makes it a call block, which loop controls cannot leave
        List<Node> body = ParseBody(out _, "endgeneration");
        _loops = loops;
        Expect(TokenKind.BlockEnd, "'%}'");
        return new BlockNode(body, position);
    }

    public Expr ParseExpression()
    {
        Enter();
        Expr value = ParseOr();
        if (AcceptName("if"))
        {
            Expr condition = ParseOr();
            Expr? otherwise = AcceptName("else") ? ParseExpression() : null;
            value = new Conditional(condition, value, otherwise);
        }
        _nesting--;
        return value;
    }

    private void Enter()
    {
        if (++_nesting > JinjaLimits.MaxNesting) throw Error($"nesting deeper than {JinjaLimits.MaxNesting} levels");
    }

    private Expr ParseOr()
    {
        Expr left = ParseAnd();
        while (AcceptName("or")) left = new Binary("or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        Expr left = ParseNot();
        while (AcceptName("and")) left = new Binary("and", left, ParseNot());
        return left;
    }

    private Expr ParseNot()
    {
        if (!AcceptName("not")) return ParseCompare();
        Enter();
        var node = new Unary("not", ParseNot());
        _nesting--;
        return node;
    }

    private Expr ParseCompare()
    {
        Expr left = ParseMath1();
        while (true)
        {
            if (Peek.Kind == TokenKind.Operator && Peek.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                string op = tokens[_at++].Value;
                left = new Binary(op, left, ParseMath1());
            }
            else if (AcceptName("in")) left = new Binary("in", left, ParseMath1());
            else if (Peek.Kind == TokenKind.Name && Peek.Value == "not" && tokens[_at + 1].Value == "in")
            {
                _at += 2;
                left = new Binary("not in", left, ParseMath1());
            }
            else return left;
        }
    }

    private Expr ParseMath1()
    {
        Expr left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "+" or "-")
            left = new Binary(tokens[_at++].Value, left, ParseConcat());
        return left;
    }

    private Expr ParseConcat()
    {
        Expr left = ParseMath2();
        while (Accept("~")) left = new Binary("~", left, ParseMath2());
        return left;
    }

    private Expr ParseMath2()
    {
        Expr left = ParsePow();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%")
            left = new Binary(tokens[_at++].Value, left, ParsePow());
        return left;
    }

    private Expr ParsePow()
    {
        Expr left = ParseUnary();
        while (Accept("**")) left = new Binary("**", left, ParseUnary());
        return left;
    }

    private Expr ParseUnary()
    {
        Expr node;
        if (Peek.Kind == TokenKind.Operator && Peek.Value is "-" or "+")
        {
            bool minus = tokens[_at++].Value == "-";
            Enter();
            node = ParseUnary();
            _nesting--;
            if (minus) node = new Unary("-", node);
        }
        else node = ParsePostfix(ParsePrimary());
        // Filters and tests bind tighter than any binary operator.
        while (true)
        {
            if (Accept("|"))
            {
                string name = ExpectName();
                var (args, kwargs) = Peek.Value == "(" && Peek.Kind == TokenKind.Operator ? ParseArguments() : ([], []);
                node = ParsePostfix(new FilterExpr(node, name, args, kwargs));
            }
            else if (AcceptName("is"))
            {
                bool negated = AcceptName("not");
                string name = ExpectName();
                var args = new List<Expr>();
                if (Peek.Kind == TokenKind.Operator && Peek.Value == "(") args = ParseArguments().Args;
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float || (Peek.Kind == TokenKind.Name && Peek.Value is not ("and" or "or" or "else" or "if" or "in" or "not")))
                    args.Add(ParsePrimary());
                node = new TestExpr(node, name, args, negated);
            }
            else return node;
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Accept("."))
                node = new GetAttr(node, ExpectName());
            else if (Peek.Kind == TokenKind.Operator && Peek.Value == "[")
            {
                _at++;
                Expr? start = Peek.Value == ":" ? null : ParseExpression();
                if (Accept(":"))
                {
                    Expr? stop = Peek.Value is ":" or "]" ? null : ParseExpression();
                    Expr? step = Accept(":") && Peek.Value != "]" ? ParseExpression() : null;
                    Expect("]");
                    node = new Slice(node, start, stop, step);
                }
                else
                {
                    Expect("]");
                    node = new GetItem(node, start!);
                }
            }
            else if (Peek.Kind == TokenKind.Operator && Peek.Value == "(")
            {
                var (args, kwargs) = ParseArguments();
                node = new Call(node, args, kwargs);
            }
            else return node;
        }
    }

    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArguments()
    {
        Expect("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Accept(")"))
        {
            if (Peek.Kind == TokenKind.Name && tokens[_at + 1].Value == "=" && tokens[_at + 1].Kind == TokenKind.Operator)
            {
                string name = tokens[_at].Value;
                _at += 2;
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
            if (!Accept(",")) { Expect(")"); break; }
        }
        return (args, kwargs);
    }

    private Expr ParsePrimary()
    {
        JinjaToken token = tokens[_at++];
        switch (token.Kind)
        {
            case TokenKind.String:
                string text = token.Value;
                while (Peek.Kind == TokenKind.String) text += tokens[_at++].Value; // adjacent literals join
                return new Literal(text);
            case TokenKind.Integer:
                // Python's integers have no bound; this interpreter's are 64-bit (found by fuzzing: an overflow escaped here).
                if (!long.TryParse(token.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long integer))
                {
                    _at--;
                    throw Error($"integer {(token.Value.Length > 30 ? token.Value[..30] + "…" : token.Value)} does not fit in 64 bits");
                }
                return new Literal(integer);
            case TokenKind.Float:
                return new Literal(double.Parse(token.Value, System.Globalization.CultureInfo.InvariantCulture));
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new Literal(true),
                    "false" or "False" => new Literal(false),
                    "none" or "None" => new Literal(null),
                    _ => new Variable(token.Value),
                };
            case TokenKind.Operator when token.Value == "(":
                Expr inner = ParseExpression();
                if (Accept(","))
                {
                    var items = new List<Expr> { inner };
                    while (!Accept(")")) { items.Add(ParseExpression()); if (!Accept(",")) { Expect(")"); break; } }
                    return new ListExpr(items, IsTuple: true);
                }
                Expect(")");
                return inner;
            case TokenKind.Operator when token.Value == "[":
                var list = new List<Expr>();
                while (!Accept("]")) { list.Add(ParseExpression()); if (!Accept(",")) { Expect("]"); break; } }
                return new ListExpr(list);
            case TokenKind.Operator when token.Value == "{":
                var pairs = new List<(Expr, Expr)>();
                while (!Accept("}"))
                {
                    Expr key = ParseExpression();
                    Expect(":");
                    pairs.Add((key, ParseExpression()));
                    if (!Accept(",")) { Expect("}"); break; }
                }
                return new DictExpr(pairs);
            default:
                _at--;
                throw Error($"unexpected {Describe(token)}");
        }
    }

    private bool Accept(string op)
    {
        if (Peek.Kind != TokenKind.Operator || Peek.Value != op) return false;
        _at++;
        return true;
    }

    private bool AcceptName(string name)
    {
        if (Peek.Kind != TokenKind.Name || Peek.Value != name) return false;
        _at++;
        return true;
    }

    private void Expect(string op)
    {
        if (!Accept(op)) throw Error($"expected '{op}'");
    }

    private void Expect(TokenKind kind, string what)
    {
        if (Peek.Kind != kind) throw Error($"expected {what}");
        _at++;
    }

    private string ExpectName()
    {
        if (Peek.Kind != TokenKind.Name) throw Error("expected a name");
        return tokens[_at++].Value;
    }

    /// <summary>A token as a message shows it: the tag ends and the template's end have no text of their own.</summary>
    private static string Describe(JinjaToken token) => token.Kind switch
    {
        TokenKind.PrintEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.PrintStart => "'{{'",
        TokenKind.BlockStart => "'{%'",
        TokenKind.End => "end of template",
        _ => $"'{token.Value}'",
    };

    private TemplateException Error(string message, int? position = null)
    {
        int at = position ?? Peek.Position;
        return new($"template: {message} at line {TemplateException.LineOf(source, at)} (character {at})");
    }
}
