/// pass@k and mean@k (docs/design.md §9): the product form agrees with the binomial definition
/// 1 - C(n-c,k)/C(n,k) computed exactly.
module Popo.Tests.Engine.VerifierPassAtK

open System
open System.Numerics
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.MathVerify
open Popo.Tests

let binomial (n: int) (k: int) : BigInteger =
    if k < 0 || k > n then 0I
    else Seq.fold (fun (acc: BigInteger) i -> acc * BigInteger(n - k + i) / BigInteger i) 1I [ 1 .. k ]

/// 1 - C(n-c,k)/C(n,k), exactly as a rational, then to float.
let exactPassAtK n c k =
    let num = binomial (n - c) k
    let den = binomial n k
    1.0 - float (Rational(num, den).ToDouble())

/// (n, c, k) with 0 <= c <= n, 1 <= k <= n.
let genNck =
    gen {
        let! n = Gen.choose (1, 200)
        let! c = Gen.choose (0, n)
        let! k = Gen.choose (1, n)
        return n, c, k
    }

let config = { FsCheckConfig.defaultConfig with maxTest = 200 }

[<Tests>]
let tests =
    testList "engine/verifier/pass-at-k" [
        testPropertyWithConfig config "the product form equals 1 - C(n-c,k)/C(n,k)" <|
            Prop.forAll (Arb.fromGen genNck) (fun (n, c, k) ->
                Accuracy.close Accuracy.engine64 (PassAtK.Estimate(n, c, k)) (exactPassAtK n c k))
        testPropertyWithConfig config "pass@1 is c/n; no correct sample gives 0; n - c < k gives 1" <|
            Prop.forAll (Arb.fromGen genNck) (fun (n, c, k) ->
                Accuracy.close Accuracy.veryHigh (PassAtK.Estimate(n, c, 1)) (float c / float n)
                && PassAtK.Estimate(n, 0, k) = 0.0
                && (n - c >= k || PassAtK.Estimate(n, c, k) = 1.0))
        testPropertyWithConfig config "pass@k does not fall as k or c grows" <|
            Prop.forAll (Arb.fromGen genNck) (fun (n, c, k) ->
                (k = n || PassAtK.Estimate(n, c, k + 1) >= PassAtK.Estimate(n, c, k))
                && (c = n || PassAtK.Estimate(n, c + 1, k) >= PassAtK.Estimate(n, c, k)))
        test "large n stays finite and exact where binomials overflow float64" {
            // C(2000, 1000) ~ 1e600 overflows float64; the product form does not form it
            let v = PassAtK.Estimate(2000, 3, 1000)
            Expect.isTrue (Accuracy.close Accuracy.engine64 v (exactPassAtK 2000 3 1000)) (sprintf "%g" v)
        }
        test "mean over problems and mean@k average per-problem values" {
            let problems = [| struct (4, 1); struct (4, 0); struct (4, 4) |]
            Expect.isTrue (Accuracy.close Accuracy.veryHigh (PassAtK.MeanAtK problems) ((0.25 + 0.0 + 1.0) / 3.0)) "mean@4"
            // n = 4, c = 1, k = 2: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 1/2
            Expect.isTrue (Accuracy.close Accuracy.veryHigh (PassAtK.Mean(problems, 2)) ((0.5 + 0.0 + 1.0) / 3.0)) "pass@2"
        }
        test "impossible counts are errors that say what was given" {
            let msg = try PassAtK.Estimate(4, 5, 2) |> ignore; "" with e -> e.Message
            Expect.stringContains msg "c=5" "names c"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> PassAtK.Estimate(4, 1, 0) |> ignore) "k = 0"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> PassAtK.Estimate(4, 1, 5) |> ignore) "k > n"
            Expect.throwsT<ArgumentException> (fun () -> PassAtK.MeanAtK [||] |> ignore) "no problems"
        }
    ]
