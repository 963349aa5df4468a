namespace Popo.Jinja;

/// <summary>
/// Recursive descent over the tokens into statements and expressions, with Jinja2's grammar and precedence
/// (lowest first): conditional expression, or, and, not, comparisons and in, + -, ~, * / // %, **, unary - +,
/// then primaries with postfix .attr [item] (call) and the filters and tests that follow them.
/// Unknown filters, tests and tags are refused here, with their position, as Jinja2 refuses them at compile time.
/// </summary>
internal sealed class Parser(SourceText source, List<Token> tokens)
{
    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", "<=", ">", ">="];
    private int index;
    private int nesting;

    private Token Current => tokens[index];
    private Token Peek(int ahead = 1) => tokens[Math.Min(index + ahead, tokens.Count - 1)];
    private Token Next() => tokens[index++];

    public List<Stmt> ParseTemplate()
    {
        var body = ParseBody([], out _);
        if (Current.Kind != TokenKind.Eof) throw Fail(Current, $"unexpected {Current.Describe()}");
        return body;
    }

    /// <summary>Statements until one of <paramref name="endTags"/> (left as the current token, after {%) or the end of the template.</summary>
    private List<Stmt> ParseBody(string[] endTags, out string? endTag)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Eof:
                    endTag = null;
                    if (endTags.Length > 0) throw Fail(token, $"unexpected end of template; expected {string.Join(" or ", endTags.Select(t => $"'{{% {t} %}}'"))}");
                    return body;
                case TokenKind.Data:
                    body.Add(new TextStmt(token.Offset, token.Text));
                    Next();
                    break;
                case TokenKind.VariableBegin:
                    Next();
                    body.Add(new OutputStmt(token.Offset, ParseTuple()));
                    Expect(TokenKind.VariableEnd);
                    break;
                case TokenKind.BlockBegin:
                    if (Peek().Kind == TokenKind.Name && endTags.Contains(Peek().Text))
                    {
                        Next();
                        endTag = Current.Text;
                        return body;
                    }
                    Next();
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Fail(token, $"unexpected {token.Describe()}");
            }
        }
    }

    private Stmt ParseStatementAt()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name) throw Fail(token, "tag name expected");
        switch (token.Text)
        {
            case "if": return ParseIf();
            case "for": return ParseFor();
            case "set": return ParseSet();
            case "macro": return ParseMacro();
            case "break":
                Next();
                Expect(TokenKind.BlockEnd);
                return new BreakStmt(token.Offset);
            case "continue":
                Next();
                Expect(TokenKind.BlockEnd);
                return new ContinueStmt(token.Offset);
            case "generation":
            {
                Next();
                var body = BlockBody(["endgeneration"], out _);
                Expect(TokenKind.BlockEnd);
                return new GenerationStmt(token.Offset, body);
            }
            default:
                throw Fail(token, $"tag '{token.Text}' is not supported by this Jinja subset (if, for, set, macro, break, continue, generation, raw)");
        }
    }

    /// <summary>The "%}" closing a tag, then its body up to an end tag (consumed; its own "%}" is left to the caller).</summary>
    private List<Stmt> BlockBody(string[] endTags, out string endTag)
    {
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(endTags, out var found);
        endTag = found!;
        Next();
        return body;
    }

    private Stmt ParseIf()
    {
        var start = Next();
        var branches = new List<(Expr, IReadOnlyList<Stmt>)>();
        IReadOnlyList<Stmt> otherwise = [];
        while (true)
        {
            var test = ParseTuple(withCondExpr: false);
            var body = BlockBody(["elif", "else", "endif"], out var end);
            branches.Add((test, body));
            if (end == "elif") continue;
            if (end == "else")
            {
                otherwise = BlockBody(["endif"], out _);
            }
            Expect(TokenKind.BlockEnd);
            return new IfStmt(start.Offset, branches, otherwise);
        }
    }

    private Stmt ParseFor()
    {
        var start = Next();
        var target = ParseAssignTarget(["in"], withNamespace: false);
        ExpectName("in");
        var iterable = ParseTuple(withCondExpr: false, extraEnd: ["recursive"]);
        Expr? filter = null;
        if (Current.IsName("if"))
        {
            Next();
            filter = ParseExpression();
        }
        if (Current.IsName("recursive")) throw Fail(Current, "recursive loops are not supported by this Jinja subset");
        var body = BlockBody(["endfor", "else"], out var end);
        IReadOnlyList<Stmt> otherwise = [];
        if (end == "else") otherwise = BlockBody(["endfor"], out _);
        Expect(TokenKind.BlockEnd);
        return new ForStmt(start.Offset, target, iterable, filter, body, otherwise);
    }

    private Stmt ParseSet()
    {
        var start = Next();
        var target = ParseAssignTarget([], withNamespace: true);
        if (Current.IsOperator("="))
        {
            Next();
            var value = ParseTuple();
            Expect(TokenKind.BlockEnd);
            return new SetStmt(start.Offset, target, value);
        }
        FilterExpr? filter = null;
        while (Current.IsOperator("|"))
        {
            Next();
            filter = ParseFilter(filter);
        }
        var body = BlockBody(["endset"], out _);
        Expect(TokenKind.BlockEnd);
        return new SetBlockStmt(start.Offset, target, filter, body);
    }

    private Stmt ParseMacro()
    {
        var start = Next();
        var name = ExpectKind(TokenKind.Name).Text;
        ExpectOperator("(");
        var parameters = new List<(string, Expr?)>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0) ExpectOperator(",");
            if (Current.IsOperator(")")) break;
            var parameter = ExpectKind(TokenKind.Name).Text;
            Expr? defaultValue = null;
            if (Current.IsOperator("="))
            {
                Next();
                defaultValue = ParseExpression();
            }
            else if (parameters.Any(p => p.Item2 is not null)) throw Fail(Current, $"macro parameter '{parameter}' without a default follows one with a default");
            parameters.Add((parameter, defaultValue));
        }
        Next();
        var body = BlockBody(["endmacro"], out _);
        if (Current.Kind == TokenKind.Name && Current.Text == name) Next();
        Expect(TokenKind.BlockEnd);
        return new MacroStmt(start.Offset, name, parameters, body);
    }

    private AssignTarget ParseAssignTarget(string[] extraEnd, bool withNamespace)
    {
        var start = Current;
        var items = new List<AssignTarget>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOperator(",");
            if (IsTupleEnd(extraEnd) || Current.IsOperator("=")) break;
            var name = ExpectKind(TokenKind.Name);
            if (name.Text is "true" or "false" or "True" or "False" or "none" or "None") throw Fail(name, $"cannot assign to '{name.Text}'");
            if (withNamespace && Current.IsOperator("."))
            {
                Next();
                items.Add(new NamespaceTarget(name.Offset, name.Text, ExpectKind(TokenKind.Name).Text));
            }
            else items.Add(new NameTarget(name.Offset, name.Text));
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (items.Count == 0) throw Fail(start, "expected a name to assign to");
        return isTuple ? new TupleTarget(start.Offset, items) : items[0];
    }

    private bool IsTupleEnd(string[] extraEnd) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || Current.IsOperator(")")
        || (Current.Kind == TokenKind.Name && extraEnd.Contains(Current.Text));

    /// <summary>Expressions separated by commas form a tuple (Jinja2's parse_tuple); one without a comma is itself.</summary>
    private Expr ParseTuple(bool withCondExpr = true, string[]? extraEnd = null, bool explicitParentheses = false)
    {
        var start = Current;
        var items = new List<Expr>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOperator(",");
            if (IsTupleEnd(extraEnd ?? [])) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (!isTuple)
        {
            if (items.Count > 0) return items[0];
            if (!explicitParentheses) throw Fail(Current, $"expected an expression, got {Current.Describe()}");
        }
        return new TupleExpr(start.Offset, items);
    }

    private Expr ParseExpression()
    {
        var start = Current;
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            Next();
            var test = ParseOr();
            Expr? otherwise = null;
            if (Current.IsName("else"))
            {
                Next();
                otherwise = ParseExpression();
            }
            expr = new CondExpr(start.Offset, test, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "or", left, ParseAnd());
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "and", left, ParseNot());
        }
        return left;
    }

    private Expr ParseNotAt()
    {
        if (!Current.IsName("not")) return ParseCompare();
        var op = Next();
        return new UnaryExpr(op.Offset, "not", ParseNot());
    }

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOps.Contains(Current.Text))
            {
                var op = Next().Text;
                rest.Add((op, ParseMath1()));
            }
            else if (Current.IsName("in"))
            {
                Next();
                rest.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Peek().IsName("in"))
            {
                Next();
                Next();
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first.Offset, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, op.Text, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var parts = new List<Expr> { ParseMath2() };
        var start = Current;
        while (Current.IsOperator("~"))
        {
            Next();
            parts.Add(ParseMath2());
        }
        return parts.Count == 1 ? parts[0] : new ConcatExpr(start.Offset, parts);
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, op.Text, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Current.IsOperator("**"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "**", left, ParseUnary(withFilter: true));
        }
        return left;
    }

    private Expr ParseUnaryAt(bool withFilter)
    {
        Expr node;
        if (Current.IsOperator("-") || Current.IsOperator("+"))
        {
            var op = Next();
            node = new UnaryExpr(op.Offset, op.Text, ParseUnary(withFilter: false));
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimaryAt()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                return token.Text switch
                {
                    "true" or "True" => new ConstExpr(token.Offset, true),
                    "false" or "False" => new ConstExpr(token.Offset, false),
                    "none" or "None" => new ConstExpr(token.Offset, null),
                    _ => new NameExpr(token.Offset, token.Text),
                };
            case TokenKind.String:
            {
                // Adjacent literals concatenate, as in Python.
                var text = new System.Text.StringBuilder();
                while (Current.Kind == TokenKind.String) text.Append(Next().Text);
                return new ConstExpr(token.Offset, text.ToString());
            }
            case TokenKind.Integer or TokenKind.Float:
                Next();
                return new ConstExpr(token.Offset, token.Value);
            case TokenKind.Operator when token.Text == "(":
            {
                Next();
                var inner = ParseTuple(explicitParentheses: true);
                ExpectOperator(")");
                return inner;
            }
            case TokenKind.Operator when token.Text == "[":
            {
                Next();
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0) ExpectOperator(",");
                    if (Current.IsOperator("]")) break;
                    items.Add(ParseExpression());
                }
                Next();
                return new ListExpr(token.Offset, items);
            }
            case TokenKind.Operator when token.Text == "{":
            {
                Next();
                var pairs = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (pairs.Count > 0) ExpectOperator(",");
                    if (Current.IsOperator("}")) break;
                    var key = ParseExpression();
                    ExpectOperator(":");
                    pairs.Add((key, ParseExpression()));
                }
                Next();
                return new DictExpr(token.Offset, pairs);
            }
            default:
                throw Fail(token, $"unexpected {token.Describe()}");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator(".") || Current.IsOperator("[")) node = ParseSubscript(node);
            else if (Current.IsOperator("(")) node = new CallExpr(Current.Offset, node, ParseCallArgs());
            else return node;
        }
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|"))
            {
                Next();
                node = ParseFilter(node);
            }
            else if (Current.IsName("is")) node = ParseTest(node);
            else if (Current.IsOperator("(")) node = new CallExpr(Current.Offset, node, ParseCallArgs());
            else return node;
        }
    }

    private FilterExpr ParseFilter(Expr? value)
    {
        var name = ExpectKind(TokenKind.Name);
        if (!Filters.Exists(name.Text)) throw Fail(name, $"no filter named '{name.Text}' (this Jinja subset has: {string.Join(", ", Filters.Names)})");
        var args = Current.IsOperator("(") ? ParseCallArgs() : CallArgs.None;
        return new FilterExpr(name.Offset, value, name.Text, args);
    }

    private Expr ParseTest(Expr value)
    {
        var isToken = Next();
        var negated = false;
        if (Current.IsName("not"))
        {
            Next();
            negated = true;
        }
        var name = ExpectKind(TokenKind.Name);
        if (!TemplateTests.Exists(name.Text)) throw Fail(name, $"no test named '{name.Text}' (this Jinja subset has: {string.Join(", ", TemplateTests.Names)})");
        CallArgs args;
        if (Current.IsOperator("(")) args = ParseCallArgs();
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !(Current.IsName("else") || Current.IsName("or") || Current.IsName("and")))
        {
            if (Current.IsName("is")) throw Fail(Current, "you cannot chain multiple tests with is");
            args = new CallArgs([ParsePostfix(ParsePrimary())], []);
        }
        else args = CallArgs.None;
        Expr test = new TestExpr(name.Offset, value, name.Text, args);
        return negated ? new UnaryExpr(isToken.Offset, "not", test) : test;
    }

    private Expr ParseSubscript(Expr node)
    {
        var token = Next();
        if (token.Text == ".")
        {
            var attribute = Next();
            if (attribute.Kind == TokenKind.Name) return new GetAttrExpr(token.Offset, node, attribute.Text);
            if (attribute.Kind == TokenKind.Integer) return new GetItemExpr(token.Offset, node, new ConstExpr(attribute.Offset, attribute.Value));
            throw Fail(attribute, "expected a name or number after '.'");
        }
        var args = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (args.Count > 0) ExpectOperator(",");
            args.Add(ParseSubscribed());
        }
        Next();
        if (args.Count == 0) throw Fail(token, "expected a subscript expression");
        return new GetItemExpr(token.Offset, node, args.Count == 1 ? args[0] : new TupleExpr(token.Offset, args));
    }

    private Expr ParseSubscribed()
    {
        var start = Current;
        Expr? first = null;
        if (!Current.IsOperator(":"))
        {
            first = ParseExpression();
            if (!Current.IsOperator(":")) return first;
        }
        Next();
        Expr? stop = null, step = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(",")) stop = ParseExpression();
        if (Current.IsOperator(":"))
        {
            Next();
            if (!Current.IsOperator("]") && !Current.IsOperator(",")) step = ParseExpression();
        }
        return new SliceExpr(start.Offset, first, stop, step);
    }

    private CallArgs ParseCallArgs()
    {
        var open = ExpectOperator("(");
        var positional = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + keywords.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")")) break;
            }
            if (Current.IsOperator("*") || Current.IsOperator("**")) throw Fail(Current, "*args and **kwargs in calls are not supported by this Jinja subset");
            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                var key = Next().Text;
                Next();
                keywords.Add((key, ParseExpression()));
            }
            else
            {
                if (keywords.Count > 0) throw Fail(open, "invalid syntax for function call expression (positional argument after a keyword argument)");
                positional.Add(ParseExpression());
            }
        }
        Next();
        return new CallArgs(positional, keywords);
    }

    private Token Expect(TokenKind kind)
    {
        if (Current.Kind != kind)
            throw Fail(Current, $"expected {new Token(kind, kind == TokenKind.BlockEnd ? "%}" : kind == TokenKind.VariableEnd ? "}}" : kind.ToString(), 0).Describe()}, got {Current.Describe()}");
        return Next();
    }

    private Token ExpectKind(TokenKind kind)
    {
        if (Current.Kind != kind) throw Fail(Current, $"expected a {kind.ToString().ToLowerInvariant()}, got {Current.Describe()}");
        return Next();
    }

    private Token ExpectOperator(string op)
    {
        if (!Current.IsOperator(op)) throw Fail(Current, $"expected '{op}', got {Current.Describe()}");
        return Next();
    }

    private void ExpectName(string name)
    {
        if (!Current.IsName(name)) throw Fail(Current, $"expected '{name}', got {Current.Describe()}");
        Next();
    }

    // Each way the grammar recurses passes through one of these; a template nested past the bound is refused at the
    // token where it goes too deep, not by a stack overflow that ends the process.
    private Stmt ParseStatement() => Nested(ParseStatementAt);
    private Expr ParseNot() => Nested(ParseNotAt);
    private Expr ParseUnary(bool withFilter) => Nested(() => ParseUnaryAt(withFilter));
    private Expr ParsePrimary() => Nested(ParsePrimaryAt);

    private T Nested<T>(Func<T> parse)
    {
        if (!RenderLimits.StackAllows(++nesting))
            throw Fail(Current, $"template nested too deeply: more than {RenderLimits.MaxNesting} levels of statements or expressions");
        try { return parse(); }
        finally { nesting--; }
    }

    private TemplateException Fail(Token token, string detail) => source.Error(token.Offset, detail);
}
