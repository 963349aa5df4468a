/// The verifier on the categories of issue 16 (Math-Verify parity): extraction routes and answer formats,
/// and equivalence by structure and value, each case checked both ways.
module Popo.Tests.Engine.VerifierCategories

open Expecto
open Popo.MathVerify

/// (category, a, b): a and b denote the same answer.
let same =
    [ "thousands {,}", "14{,}916", "14916"
      "thousands ,\\!", "10,\\!080", "10080"
      "list joined by \\text{ and }", "12\\text{ and }13", "12, 13"
      "list joined by \\text{ or }", "2\\text{ or }3", "3, 2"
      "list joined by and", "12 and 13", "\\{13, 12\\}"
      "tuple on the left", "(p,q)=(3,2)", "(3,2)"
      "function value on the left", "f(2)=1", "1"
      "segment on the left", "AB=4", "4"
      "one variable on the left", "x = -4", "-4"
      "relation >=", "x >= 3", "x \\geq 3"
      "relation \\ge", "x \\ge 3", "3 \\le x"
      "relation \\lt", "x \\lt 2", "x < 2"
      "relation !=", "x != 3", "x \\neq 3"
      "interval vs inequality", "-2 \\le x \\le 7", "[-2,7]"
      "open interval vs inequality", "x > 5", "(5, \\infty)"
      "half-open interval", "x \\le 0", "(-\\infty, 0]"
      "pmatrix vs bmatrix", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"
      "array matrix", "\\left[\\begin{array}{cc} 1 & 0 \\\\ 0 & 1 \\end{array}\\right]", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}"
      "column vector", "\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}", "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac23 \\end{pmatrix}"
      "letter answer", "E", "\\text{(E)}"
      "word answer", "odd", "\\text{odd}"
      "equation answer", "f(y)=y", "f(y) = y"
      "complex number order", "i+1", "1+i"
      "linear expression order", "2-2p", "-2p+2"
      "fraction split", "\\frac{x}{7}+\\frac{2}{7}", "\\frac{x+2}{7}"
      "rationalised root", "\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt2}"
      "trig identity", "\\tan^2 x+1", "\\sec^2 x"
      "trig identity with a constant", "\\sin^2 x + \\cos^2 x", "1"
      "\\dfrac", "\\dfrac{3}{4}", "0.75"
      "\\tfrac", "\\tfrac{3}{4}", "\\frac34"
      "\\cfrac", "\\cfrac{1}{2}", "1/2"
      "\\frac12", "\\frac12", "0.5"
      "implicit multiplication", "2\\pi r", "2 r \\pi"
      "root with an index", "\\sqrt[3]{27}", "3"
      "odd root of a negative", "\\sqrt[3]{-8}", "-2"
      "logarithm with a base", "\\log_2 8", "3"
      "natural logarithm", "\\ln e^2", "2"
      "exponential", "e^{i\\pi}", "-1"
      "\\pm", "1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"
      "\\pm inside a set", "\\{1\\pm\\sqrt{5},-2\\}", "-2, 1-\\sqrt5, 1+\\sqrt5"
      "percent", "25\\%", "\\frac14"
      "degrees", "30^\\circ", "30"
      "units", "5.4 \\text{ cents}", "5.4"
      "units with a power", "864 \\mbox{ inches}^2", "864"
      "dollar sign", "\\$18.90", "18.9"
      "mixed number", "1\\frac{4}{5}", "\\frac{9}{5}"
      "set union of finite sets", "\\{1,3\\} \\cup \\{2,4\\}", "\\{1,2,3,4\\}"
      "union of intervals in any order", "(-\\infty, 2) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)"
      "polynomial identity", "x^2+2x+1", "(x+1)^2"
      "equation sides swapped", "y = 2x + 3", "2x + 3 = y"
      "number in a base", "52_8", "52_{8}"
      "factorial", "5!", "120"
      "absolute value", "|-3|", "3"
      "long decimal to its digits", "0.333333", "\\frac13"
      "long decimal of an irrational", "1.414214", "\\sqrt2" ]

/// (category, a, b): a and b are different answers.
let different =
    [ "words joining a list are not dropped", "12\\text{ and }13", "1213"
      "or joining a list", "2\\text{ or }3", "23"
      "digits separated by a space", "7 0", "70"
      "short decimal is not the fraction", "0.33", "\\frac{1}{3}"
      "three decimals are not the fraction", "0.333", "\\frac{1}{3}"
      "short decimal is not the root", "1.4142", "\\sqrt{2}"
      "a list is not one of its items", "3, 5", "3"
      "an extra set element", "\\{1,2,3\\}", "\\{1,2\\}"
      "a tuple is ordered", "(1,2)", "(2,1)"
      "interval ends", "(3,4]", "(3,4)"
      "strict vs non-strict", "x > 3", "x \\ge 3"
      "a tuple is not a set", "[1,2]", "\\{1,2\\}"
      "different variables", "2x", "2y"
      "a variable is not a number", "2k", "2"
      "letters are case sensitive", "E", "e"
      "different words", "odd", "even"
      "an equation is not its right side", "5x - 7y + 11z + 4 = 0", "0"
      "different equations", "f(y)=y", "f(y)=2y"
      "\\pm is two values", "1 \\pm \\sqrt{19}", "1+\\sqrt{19}"
      "row vs column", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1&2\\end{pmatrix}"
      "a tiny difference", "x+0.000001", "x"
      "a function is not its argument", "\\sin x", "x"
      "a base is not its digits", "204_5", "204"
      "a mixed number is not a product", "2\\frac{1}{2}", "1"
      "i is not 1", "i", "1" ]

let marked = AnswerFormat.Marked

/// A verdict's correctness and route (the answer and error fields are checked on their own).
let route (v: Verdict) = v.Correct, v.Route

[<Tests>]
let tests =
    testList "engine/verifier/categories" [
        testList "equal" [
            for cat, a, b in same do
                test (sprintf "%s: %s = %s" cat a b) {
                    Expect.isTrue (Equivalence.Equal(a, b)) "a = b"
                    Expect.isTrue (Equivalence.Equal(b, a)) "b = a"
                    Expect.isTrue (MathVerifier.IsCorrect(sprintf "So the answer is $\\boxed{%s}$." a, b, marked)) "boxed a verifies against b"
                }
        ]
        testList "different" [
            for cat, a, b in different do
                test (sprintf "%s: %s <> %s" cat a b) {
                    Expect.isFalse (Equivalence.Equal(a, b)) "a <> b"
                    Expect.isFalse (Equivalence.Equal(b, a)) "b <> a"
                }
        ]
        testList "extraction" [
            test "several adjacent boxes answer a multi-answer problem as a list" {
                Expect.isTrue (MathVerifier.IsCorrect("the roots are $\\boxed{2}$ and $\\boxed{3}$", "3, 2", marked)) "both boxes"
                Expect.isFalse (MathVerifier.IsCorrect("the roots are $\\boxed{2}$ and $\\boxed{3}$", "3", marked)) "two answers are not one"
                Expect.isTrue (MathVerifier.IsCorrect("first I thought \\boxed{1}. No wait, it is \\boxed{2}", "2", marked)) "a corrected box"
            }
            test "the answer is: the formula up to the first plain word" {
                Expect.isTrue (MathVerifier.IsCorrect("The answer is 42 because 6*7", "42", marked)) "because"
                Expect.isTrue (MathVerifier.IsCorrect("The final answer is $\\frac{1}{2}$. I hope it is correct.", "0.5", marked)) "math span"
                Expect.isTrue (MathVerifier.IsCorrect("So the answer is 12 and 13.", "12, 13", marked)) "a list joined by and"
                Expect.isTrue (MathVerifier.IsCorrect("The answer is Evelyn.", "\\text{Evelyn}", marked)) "a word"
                Expect.isTrue (MathVerifier.IsCorrect("Answer: $\\dfrac{3}{4}$", "\\frac34", marked)) "Answer:"
            }
            test "tags and #### are marked answers" {
                Expect.equal (route (MathVerifier.Verify("<answer>7</answer>", "7", marked))) (true, AnswerRoute.Marked) "tags"
                Expect.equal (route (MathVerifier.Verify("so\n#### 1,234", "1234", marked))) (true, AnswerRoute.Marked) "####"
            }
            test "without a marker, marked and boxed give no answer; any reads the last math span, then a whole-token number" {
                for fmt in [ AnswerFormat.Boxed; AnswerFormat.Marked ] do
                    Expect.equal (route (MathVerifier.Verify("so it is $\\frac{1}{3}$", "\\frac13", fmt))) (false, AnswerRoute.None) "no marker"
                Expect.equal (route (MathVerifier.Verify("so it is $\\frac{1}{3}$", "\\frac13", AnswerFormat.Any))) (true, AnswerRoute.Math) "math span"
                Expect.equal (route (MathVerifier.Verify("so it is 23.", "23", AnswerFormat.Any))) (true, AnswerRoute.Number) "number"
                Expect.equal (route (MathVerifier.Verify("the answer is \\boxed{5}", "5", AnswerFormat.Boxed))) (true, AnswerRoute.Boxed) "boxed"
                Expect.isFalse (MathVerifier.IsCorrect("the answer is 5", "5", AnswerFormat.Boxed)) "boxed needs a box"
            }
            test "the fallback never takes a fragment of an expression" {
                for text, gold in [ "$\\frac{1}{3}$", "3"; "$x^2$", "2"; "$10^{-3}$", "-3"; "it is .4", "4"; "\\frac12", "12"; "value x^2", "2"; "so 8-3", "3" ] do
                    Expect.isFalse (MathVerifier.IsCorrect(text, gold, AnswerFormat.Any)) (sprintf "%s vs %s" text gold)
            }
            test "route shares count the rewarded rollouts by route" {
                let routes = [| "\\boxed{1}"; "#### 2"; "x $3$"; "it is 4"; "\\boxed{9}" |] |> Array.map (fun c -> MathVerifier.Verify(c, "0").Route)
                let shares = RouteShares.Of(routes, [| 1.0; 1.0; 1.0; 1.0; 0.0 |]) |> Seq.map (fun struct (c, v) -> c, v) |> Map.ofSeq
                Expect.equal shares (Map.ofList [ "route_boxed", 0.25; "route_marked", 0.25; "route_math", 0.25; "route_number", 0.25 ]) "shares"
                let none = RouteShares.Of([| AnswerRoute.None |], [| 0.0 |]) |> Seq.map (fun struct (_, v) -> v) |> Array.ofSeq
                Expect.isTrue (none |> Array.forall System.Double.IsNaN) "no reward: NaN"
            }
            test "a verdict carries the answer it judged, and no error on ordinary input" {
                let v = MathVerifier.Verify("so\n#### 1,234", "1234", marked)
                Expect.equal v.Answer "1,234" "the extracted answer"
                Expect.isNull v.Error "no error"
                let none = MathVerifier.Verify("no answer here", "3", marked)
                Expect.isNull none.Answer "no answer found"
            }
            test "answer_format parses its three values and names them on a bad one" {
                Expect.equal (AnswerFormats.Parse "marked") AnswerFormat.Marked "marked"
                let msg = try AnswerFormats.Parse "boxes" |> ignore; "" with e -> e.Message
                Expect.stringContains msg "boxed, marked, any" "valid values"
            }
        ]
    ]
