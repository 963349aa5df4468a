/// No false positives, as properties (issue 16): a random expression tree written in two LaTeX spellings
/// verifies; a random change of its value never does; random text never verifies under `marked`; and the
/// reward rate of random printable ASCII against the real gold answers is measured.
module Popo.Tests.Engine.VerifierProperties

open System
open System.Numerics
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.MathVerify

type Expr =
    | Num of int
    | Var of string
    | Add of Expr * Expr
    | Sub of Expr * Expr
    | Mul of Expr * Expr
    | Div of Expr * Expr   // the denominator never vanishes at positive points (see genExpr)
    | Pow of Expr * int
    | Sqrt of int          // of a perfect square, so the value stays rational
    | Neg of Expr

let rec genExpr (size: int) : Gen<Expr> =
    let leaf = Gen.oneof [ Gen.choose (0, 30) |> Gen.map Num; Gen.elements [ "x"; "y"; "a" ] |> Gen.map Var ]
    if size <= 0 then leaf
    else
        let sub = genExpr (size / 2)
        let nonZero = Gen.oneof [ Gen.choose (1, 12) |> Gen.map Num; Gen.map2 (fun v k -> Add(Var v, Num k)) (Gen.elements [ "x"; "y" ]) (Gen.choose (1, 9)) ]
        Gen.frequency
            [ 2, leaf
              3, Gen.map2 (fun a b -> Add(a, b)) sub sub
              2, Gen.map2 (fun a b -> Sub(a, b)) sub sub
              3, Gen.map2 (fun a b -> Mul(a, b)) sub sub
              2, Gen.map2 (fun a b -> Div(a, b)) sub nonZero
              1, Gen.map2 (fun a k -> Pow(a, k)) leaf (Gen.choose (2, 3))
              1, Gen.choose (1, 12) |> Gen.map (fun k -> Sqrt(k * k))
              1, Gen.map Neg sub ]

/// Exact value at a point (x, y, a all rational).
let rec eval (env: Map<string, Rational>) (e: Expr) : Rational =
    match e with
    | Num n -> Rational.FromInteger(BigInteger n)
    | Var v -> env.[v]
    | Add(a, b) -> eval env a + eval env b
    | Sub(a, b) -> eval env a - eval env b
    | Mul(a, b) -> eval env a * eval env b
    | Div(a, b) -> eval env a / eval env b
    | Pow(a, k) -> Rational.Pow(eval env a, k)
    | Sqrt n -> Rational.FromInteger(BigInteger(Math.Sqrt(float n) |> round))
    | Neg a -> -(eval env a)

let points =
    [ for (p, q) in [ (3, 7); (11, 5); (2, 9) ] ->
          Map.ofList [ "x", Rational(BigInteger p, BigInteger q); "y", Rational(BigInteger(q + 1), BigInteger p); "a", Rational(BigInteger(p * 2 + 1), BigInteger(q + 3)) ] ]

let sameValue a b = points |> List.forall (fun env -> eval env a = eval env b)

/// First spelling: \frac, \cdot, braces everywhere.
let rec spellA (e: Expr) =
    match e with
    | Num n -> string n
    | Var v -> v
    | Add(a, b) -> sprintf "%s + %s" (spellA a) (spellA b)
    | Sub(a, b) -> sprintf "%s - \\left(%s\\right)" (spellA a) (spellA b)
    | Mul(a, b) -> sprintf "\\left(%s\\right) \\cdot \\left(%s\\right)" (spellA a) (spellA b)
    | Div(a, b) -> sprintf "\\frac{%s}{%s}" (spellA a) (spellA b)
    | Pow(a, k) -> sprintf "{%s}^{%d}" (spellA a) k
    | Sqrt n -> sprintf "\\sqrt{%d}" n
    | Neg a -> sprintf "-\\left(%s\\right)" (spellA a)

/// Second spelling: \dfrac or a/b, \times or *, plain parentheses, bare exponents.
let rec spellB (e: Expr) =
    match e with
    | Num n -> string n
    | Var v -> v
    | Add(a, b) -> sprintf "(%s)+(%s)" (spellB a) (spellB b)
    | Sub(a, b) -> sprintf "(%s)-(%s)" (spellB a) (spellB b)
    | Mul(a, b) -> sprintf "(%s)\\times(%s)" (spellB a) (spellB b)
    | Div(a, b) -> sprintf "\\dfrac{%s}{%s}" (spellB a) (spellB b)
    | Pow(a, k) -> sprintf "(%s)^%d" (spellB a) k
    | Sqrt n -> sprintf "\\sqrt{%d}" n
    | Neg a -> sprintf "-(%s)" (spellB a)

/// One random change: a literal moved by one, a sign flipped, an operator swapped.
let rec mutations (e: Expr) : Expr list =
    [ match e with
      | Num n -> yield Num(n + 1); if n > 0 then yield Num(n - 1)
      | Var v -> yield Add(Var v, Num 1)
      | Add(a, b) -> yield Sub(a, b); yield! mutations a |> List.map (fun a' -> Add(a', b))
      | Sub(a, b) -> yield Add(a, b); yield! mutations b |> List.map (fun b' -> Sub(a, b'))
      | Mul(a, b) -> yield Add(a, b); yield! mutations a |> List.map (fun a' -> Mul(a', b))
      | Div(a, b) -> yield Mul(a, b); yield! mutations a |> List.map (fun a' -> Div(a', b))
      | Pow(a, k) -> yield Pow(a, k + 1)
      | Sqrt n -> yield Num(int (Math.Sqrt(float n)) + 1)
      | Neg a -> yield a ]

let config = { FsCheckConfig.defaultConfig with maxTest = 200 }
let boxed (s: string) = sprintf "Simplifying, the answer is $\\boxed{%s}$." s

let printable (rnd: Random) (n: int) = String(Array.init n (fun _ -> char (rnd.Next(32, 127))))

[<Tests>]
let tests =
    testList "engine/verifier/properties" [
        testPropertyWithConfig config "a random expression in two spellings verifies" <|
            Prop.forAll (Arb.fromGen (genExpr 12)) (fun e ->
                MathVerifier.IsCorrect(boxed (spellA e), spellB e, AnswerFormat.Marked)
                && MathVerifier.IsCorrect(boxed (spellB e), spellA e, AnswerFormat.Marked))
        testPropertyWithConfig config "a random change of value never verifies" <|
            Prop.forAll (Arb.fromGen (genExpr 12)) (fun e ->
                mutations e
                |> List.filter (fun m -> not (sameValue e m))
                |> List.forall (fun m ->
                    not (MathVerifier.IsCorrect(boxed (spellA m), spellB e, AnswerFormat.Marked))
                    && not (Equivalence.Equal(spellB m, spellA e))))
        testPropertyWithConfig config "an extra set element, a dropped one, or two answers joined never verify" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.listOfLength 4 (Gen.choose (1, 99))) (Gen.choose (1, 99)))) (fun (items, extra) ->
                let items = List.distinct items
                let set xs = "\\{" + String.Join(", ", xs |> List.map string) + "\\}"
                let extraOk = List.contains extra items || not (Equivalence.Equal(set (items @ [ extra ]), set items))
                let dropped = items.Length < 2 || not (Equivalence.Equal(set items.Tail, set items))
                let a, b = items.Head, extra
                let joined = string a + string b
                let joinedOk =
                    [ sprintf "%d\\text{ and }%d" a b; sprintf "%d and %d" a b; sprintf "%d, %d" a b; sprintf "%d %d" a b ]
                    |> List.forall (fun s -> not (MathVerifier.IsCorrect(boxed s, joined, AnswerFormat.Marked)))
                    && not (MathVerifier.IsCorrect(sprintf "$\\boxed{%d}$ and $\\boxed{%d}$" a b, joined, AnswerFormat.Marked))
                    && (a = b || not (MathVerifier.IsCorrect(sprintf "$\\boxed{%d}$ and $\\boxed{%d}$" a b, string b, AnswerFormat.Marked)))
                extraOk && dropped && joinedOk)
        testPropertyWithConfig config "random printable text never verifies under marked" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (0, 100000)) (Gen.choose (1, 3000)))) (fun (seed, n) ->
                let text = printable (Random seed) n
                [ "5"; "0"; "1"; "12"; "\\frac{1}{2}"; "x" ] |> List.forall (fun g -> not (MathVerifier.IsCorrect(text, g, AnswerFormat.Marked))))
        test "random printable ASCII against the real gold answers: reward rate 0 under marked, below 0.1% under any" {
            let rnd = Random 2024
            let golds = [ for name in [ "gsm8k"; "math500"; "amc2023"; "aime24"; "aime25" ] do yield! VerifierRealData.golds name ]
            let perGold = 4
            let mutable marked, any, total = 0, 0, 0
            for g in golds do
                for _ in 1 .. perGold do
                    let text = printable rnd (rnd.Next(20, 2000))
                    total <- total + 1
                    if MathVerifier.IsCorrect(text, g, AnswerFormat.Marked) then marked <- marked + 1
                    if MathVerifier.IsCorrect(text, g, AnswerFormat.Any) then any <- any + 1
            let rate = float any / float total
            printfn "random printable ASCII vs %d gold answers x %d: marked %d, any %d of %d (%.4f%%)" golds.Length perGold marked any total (100.0 * rate)
            Expect.equal marked 0 "rewards under marked"
            Expect.isLessThan rate 0.001 "reward rate under any"
        }
        test "every gold answer verifies against itself under marked, and every gsm8k worked solution against its answer" {
            for name in [ "gsm8k"; "math500"; "amc2023"; "aime24"; "aime25" ] do
                for g in VerifierRealData.golds name do
                    Expect.isTrue (MathVerifier.IsCorrect(boxed g, g, AnswerFormat.Marked)) (sprintf "%s gold %s" name g)
                    Expect.isTrue (Equivalence.Equal(g, g)) (sprintf "%s gold %s equals itself" name g)
            let d = Popo.Engine.Data.JsonlDataset.Load(SharedData.file "gsm8k")
            for p in d.Problems do
                Expect.isTrue (MathVerifier.IsCorrect(p.Solution, p.Answer, AnswerFormat.Marked)) (sprintf "solution of %s" p.Id)
        }
    ]
