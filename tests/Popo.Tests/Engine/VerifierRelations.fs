/// The verifier on relations (issue 33): chains of equalities judged by their last side, equations and
/// inequalities equal after rearranging, scaling or negating, labelled golds (|AB| = 1, V_1:V_2 = 11:21,
/// 0 < f(x) < 1, x < 2 or x > 3) and a scaled matrix. Each rule has its property of no false positive.
module Popo.Tests.Engine.VerifierRelations

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.MathVerify

let config = { FsCheckConfig.defaultConfig with maxTest = 100 }

/// Equal both ways (the verifier is symmetric) and through a boxed completion.
let equal (a: string) (b: string) =
    Equivalence.Equal(a, b) && Equivalence.Equal(b, a)
    && MathVerifier.IsCorrect(sprintf "So the answer is $\\boxed{%s}$." a, b, AnswerFormat.Marked)

let neither (a: string) (b: string) = not (Equivalence.Equal(a, b)) && not (Equivalence.Equal(b, a))

/// A signed term "+ 3x" / "- 3x" of a linear form (the coefficient 1 written out).
let term (c: int) (v: string) = if c >= 0 then sprintf "+ %d%s" c v else sprintf "- %d%s" (-c) v
let num (c: int) = if c >= 0 then sprintf "+ %d" c else sprintf "- %d" -c

let nonZero lo hi = Gen.choose (lo, hi) |> Gen.filter (fun k -> k <> 0)

/// a x + b y = c with a, b nonzero, and a nonzero scale k.
let genLine = Gen.zip (Gen.zip (nonZero -9 9) (nonZero -9 9)) (Gen.zip (Gen.choose (-20, 20)) (nonZero -5 5))

/// a x + b op c with a nonzero, one of the four directions.
let genInequality = Gen.zip (Gen.zip (nonZero -9 9) (Gen.choose (-20, 20))) (Gen.zip (Gen.choose (-20, 20)) (Gen.elements [ "<"; "\\le"; ">"; "\\ge" ]))

let flip op = match op with "<" -> ">" | ">" -> "<" | "\\le" -> "\\ge" | _ -> "\\le"
let strictness op = match op with "<" -> "\\le" | "\\le" -> "<" | ">" -> "\\ge" | _ -> ">"

[<Tests>]
let tests =
    testList "engine/verifier/relations" [
        testList "chains" [
            test "a chain of equalities is judged by its last side" {
                Expect.isTrue (equal "x = 5+5+1 = 7 = 11" "x = 11") "against the assignment"
                Expect.isTrue (equal "x = 5+5+1 = 7 = 11" "11") "against the value"
                Expect.isTrue (equal "x \\approx 11" "11") "\\approx states the value"
                Expect.isTrue (equal "x = 1/3 \\approx 0.3" "\\frac13") "what \\approx follows is the value"
                Expect.isTrue (neither "x = 1/3 \\approx 0.3" "0.3") "not its approximation"
                Expect.isTrue (Equivalence.Equal("1 = \\zzz = x = 0", "0")) "an unreadable middle side"
                Expect.isTrue (MathVerifier.IsCorrect("so $x = 2 \\cdot 3 = 6$", "6", AnswerFormat.Any)) "the last math span"
                Expect.isTrue (neither "1 = \\zzz = x = 0" "1") "not the first side"
                Expect.isTrue (neither "x = 5+5+1 = 7 = 11" "y = 11") "another name"
                Expect.isTrue (neither "x = 11 = 12" "11") "not a middle side"
            }
            testPropertyWithConfig config "a chain equals its last side, and never a value off by one or of another sign" <|
                Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 500)) (Gen.choose (1, 500)))) (fun (a, b) ->
                    let v = a + b
                    let chain = sprintf "x = %d + %d = %d" a b v
                    equal chain (string v) && equal chain (sprintf "x = %d" v)
                    && neither chain (string (v + 1)) && neither chain (string (-v)) && neither chain (sprintf "x = %d" (v - 1)))
        ]
        testList "rearranged" [
            test "equations equal after moving terms, scaling or negating" {
                Expect.isTrue (equal "5x-7y+11z=-4" "5x-7y+11z+4=0") "a term moved"
                Expect.isTrue (equal "-5x+7y-11z-4=0" "5x-7y+11z+4=0") "negated"
                Expect.isTrue (equal "2x+4y-3=0" "y=-\\frac12 x+\\frac34") "solved for y"
                Expect.isTrue (equal "x^2/16+y^2/12=1/4" "x^2/4+y^2/3=1") "scaled"
                Expect.isTrue (neither "-5x+7y-11z+4=0" "5x-7y+11z+4=0") "one sign flipped"
                Expect.isTrue (neither "x^2/16+y^2/12=1/4" "x^2/4+y^2/3=2") "another constant"
                Expect.isTrue (neither "x^2 = 1" "x = 1") "a power is not its base"
                Expect.isTrue (neither "x = 5" "y = 5") "another variable"
            }
            test "inequalities equal after scaling by a positive number, or negating with the direction flipped" {
                Expect.isTrue (equal "-x > -1" "x < 1") "negated"
                Expect.isTrue (equal "-x > -1" "(-\\infty, 1)") "its interval"
                Expect.isTrue (equal "2x+1 \\le 5" "x \\le 2") "solved"
                Expect.isTrue (equal "2x+4y < 6" "x+2y-3 < 0") "two variables, scaled"
                Expect.isTrue (equal "2x+4y < 6" "-x-2y+3 > 0") "two variables, negated"
                Expect.isTrue (neither "-x > -1" "x > 1") "the direction kept while negating"
                Expect.isTrue (neither "2x+4y < 6" "-x-2y+3 < 0") "two variables, negated without the flip"
                Expect.isTrue (neither "-x \\ge -1" "x < 1") "strictness"
                Expect.isTrue (neither "|x| < 1" "x < 1") "not linear: |x| is not rearranged"
                Expect.isTrue (neither "\\sqrt{x^2} < 1" "x < 1") "not linear: a root is not rearranged"
            }
            testPropertyWithConfig config "a line scaled by k != 0 is the same line; a changed constant, coefficient or sign is not" <|
                Prop.forAll (Arb.fromGen genLine) (fun ((a, b), (c, k)) ->
                    let line = sprintf "%dx %s = %d" a (term b "y") c
                    let scaled = sprintf "%dx %s %s = 0" (k * a) (term (k * b) "y") (num (-k * c))
                    equal line scaled
                    && neither line (sprintf "%dx %s %s = 0" (k * a) (term (k * b) "y") (num (-k * (c + 1))))
                    && neither line (sprintf "%dx %s %s = 0" (k * a) (term (k * (b + 1)) "y") (num (-k * c)))
                    && neither line (sprintf "%dx %s %s = 0" (-k * a) (term (k * b) "y") (num (-k * c))))
            testPropertyWithConfig config "a x + b op c equals its solved interval; a flipped direction, strictness or bound does not" <|
                Prop.forAll (Arb.fromGen genInequality) (fun ((a, b), (c, op)) ->
                    let ineq = sprintf "%dx %s %s %d" a (num b) op c
                    let negated = sprintf "%dx %s %s %d" (-a) (num (-b)) (flip op) (-c)
                    let bound = sprintf "\\frac{%d}{%d}" (c - b) a
                    let solved = sprintf "x %s %s" (if a > 0 then op else flip op) bound
                    let other = sprintf "x %s %s" (if a > 0 then op else flip op) (sprintf "\\frac{%d}{%d}" (c - b + 1) a)
                    equal ineq negated && equal ineq solved
                    && neither ineq (sprintf "%dx %s %s %d" (-a) (num (-b)) op (-c))
                    && neither ineq (sprintf "%dx %s %s %d" a (num b) (strictness op) c)
                    && neither ineq other)
        ]
        testList "labelled golds" [
            test "a labelled gold equals its bare value" {
                Expect.isTrue (equal "|AB|=1" "1") "a length"
                Expect.isTrue (equal "V_1:V_2=11:21" "11:21") "a ratio"
                Expect.isTrue (equal "V_1:V_2=11:21" "\\frac{11}{21}") "a ratio as a fraction"
                Expect.isTrue (equal "\\frac{NO}{BO}=\\frac{3}{5}" "\\frac35") "a quotient of segments"
                Expect.isTrue (equal "0<f(x)<1" "(0,1)") "a bounded function"
                Expect.isTrue (equal "x < 2 \\text{ or } x > 3" "(-\\infty,2)\\cup(3,\\infty)") "or is a union"
                Expect.isTrue (neither "V_1:V_2=11:21" "21:11") "a ratio reversed"
                Expect.isTrue (neither "0<f(x)<1" "[0,1)") "an end closed"
                Expect.isTrue (neither "0<2x<1" "(0,1)") "a multiple of the variable is no label"
                Expect.isTrue (neither "x > 3" "y > 3") "two names"
                Expect.isTrue (neither "x < 2 \\text{ and } x > 3" "(-\\infty,2)\\cup(3,\\infty)") "and is not a union"
                Expect.isTrue (neither "x < 2 \\text{ or } y > 3" "(-\\infty,2)\\cup(3,\\infty)") "two names are not one union"
            }
            testPropertyWithConfig config "a labelled value is accepted; off by one, negated or reciprocal it is not" <|
                Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 60)) (Gen.choose (1, 60)) |> Gen.filter (fun (p, q) -> p <> q))) (fun (p, q) ->
                    let r = sprintf "\\frac{%d}{%d}" p q
                    let labelled = [ sprintf "|AB| = %s" r; sprintf "\\frac{NO}{BO} = %s" r; sprintf "V_1:V_2 = %d:%d" p q ]
                    labelled |> List.forall (fun l ->
                        equal l r
                        && neither l (sprintf "\\frac{%d}{%d}" (p + 1) q) && neither l (sprintf "-%s" r)
                        && neither l (sprintf "\\frac{%d}{%d}" q p)))
            testPropertyWithConfig config "lo < f(x) < hi and x < lo or x > hi are their intervals; a closed end or a missing part is not" <|
                Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (-50, 50)) (Gen.choose (1, 50)))) (fun (lo, w) ->
                    let hi = lo + w
                    equal (sprintf "%d < f(x) < %d" lo hi) (sprintf "(%d, %d)" lo hi)
                    && neither (sprintf "%d < f(x) < %d" lo hi) (sprintf "[%d, %d)" lo hi)
                    && neither (sprintf "%d < f(x) < %d" lo hi) (sprintf "(%d, %d)" lo (hi + 1))
                    && equal (sprintf "x < %d \\text{ or } x > %d" lo hi) (sprintf "(-\\infty, %d) \\cup (%d, \\infty)" lo hi)
                    && neither (sprintf "x < %d \\text{ or } x > %d" lo hi) (sprintf "(-\\infty, %d)" lo)
                    && neither (sprintf "x < %d \\text{ or } x > %d" lo hi) (sprintf "(-\\infty, %d] \\cup (%d, \\infty)" lo hi)
                    && neither (sprintf "x > %d \\text{ or } x < %d" lo hi) (sprintf "(-\\infty, %d) \\cup (%d, \\infty)" lo hi))
        ]
        testList "matrices" [
            test "a negated matrix is the matrix of negated entries" {
                Expect.isTrue (equal "-\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}" "\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}") "-I"
                Expect.isTrue (neither "-\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}" "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}") "not I"
            }
            testPropertyWithConfig config "k M equals M with its entries scaled; M itself, or one entry off by one, does not" <|
                Prop.forAll (Arb.fromGen (Gen.zip (Gen.listOfLength 4 (nonZero -20 20)) (Gen.elements [ -1; -3; 2; 5 ]))) (fun (entries, k) ->
                    let m (xs: int list) = sprintf "\\begin{pmatrix}%d&%d\\\\%d&%d\\end{pmatrix}" xs.[0] xs.[1] xs.[2] xs.[3]
                    let scaled = if k = -1 then "-" + m entries else sprintf "%d%s" k (m entries)
                    equal scaled (m (entries |> List.map ((*) k)))
                    && neither scaled (m entries)
                    && neither scaled (m (entries |> List.mapi (fun i x -> if i = 2 then k * x + 1 else k * x))))
        ]
    ]
