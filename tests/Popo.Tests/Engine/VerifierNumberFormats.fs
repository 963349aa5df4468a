/// The verifier on number formats in plain text (issue 33): a space as thousands separator, a decimal comma
/// where no thousands reading is possible, a number glued to a currency or unit, a leading-dot decimal, a bare
/// \frac, a quantity with a \text unit against \$ with ,\!; and two verdicts kept against Math-Verify's.
module Popo.Tests.Engine.VerifierNumberFormats

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.MathVerify

let config = { FsCheckConfig.defaultConfig with maxTest = 100 }

let any = AnswerFormat.Any
let neither (a: string) (b: string) = not (Equivalence.Equal(a, b)) && not (Equivalence.Equal(b, a))
let both (a: string) (b: string) = Equivalence.Equal(a, b) && Equivalence.Equal(b, a)

/// n with a separator between groups of three digits.
let grouped (sep: string) (n: int64) =
    let s = string n
    let head = s.Length % 3
    let groups = [ if head > 0 then yield s.[.. head - 1]
                   for i in head .. 3 .. s.Length - 1 -> s.[i .. i + 2] ]
    String.Join(sep, groups)

let genBig = Gen.choose (1000, 999999999) |> Gen.map int64

[<Tests>]
let tests =
    testList "engine/verifier/number formats" [
        test "plain-text numbers as a grader reads them" {
            Expect.isTrue (both "1 000" "1000") "a space between groups of three"
            Expect.isTrue (both "1,22" "1.22") "a decimal comma"
            Expect.isTrue (neither "1,220" "1.22") "a comma before three digits is thousands"
            Expect.isTrue (both "0,111" "0.111") "a leading 0 is no thousands group"
            Expect.isTrue (neither "0,111" "111") "so 0,111 is not 111"
            Expect.isTrue (neither "-2,1" "-2.1") "one digit after the comma: a list of two answers"
            Expect.isTrue (both "1,000.99€" "1000.99") "a currency sign glued"
            Expect.isTrue (both "1,000.99m²" "1000.99") "a unit with a superscript glued"
            Expect.isTrue (neither "5x²" "5") "a variable squared is no unit"
            Expect.isTrue (both "32,348 \\text{ dollars}" "\\$32,\\!348") "a \\text unit against \\$ and ,\\!"
            Expect.isTrue (both ".4" "0.4") "a leading-dot decimal"
            Expect.isTrue (neither "7 0" "70") "digits with a space that are no thousands group"
        }
        test "the last number of a completion in those formats (format any)" {
            for text, gold in [ "So the total is 1 000.", "1000"; "The length is 1,22", "1.22"; "It costs 1,000.99€.", "1000.99"
                                "The area is 1,000.99m².", "1000.99"; "so p = .4", "0.4"; "which gives \\frac{10}{9}.", "\\frac{10}{9}" ] do
                Expect.isTrue (MathVerifier.IsCorrect(text, gold, any)) (sprintf "%s vs %s" text gold)
            for text, gold in [ "in 2024 100 people came", "2024100"; "it is .4", "4"; "value x^2", "2"; "so 8-3", "3"
                                "which gives \\frac{10}{9}.", "\\frac{9}{10}"; "we get 1,2,3", "1.2" ] do
                Expect.isFalse (MathVerifier.IsCorrect(text, gold, any)) (sprintf "%s vs %s" text gold)
        }
        test "Math-Verify's verdicts kept wrong on purpose are not ours: 9\\,901 is 9901, 0.0000673 is not .0000672" {
            Expect.isTrue (both "9\\,901" "9901") "a thin space between groups"
            Expect.isTrue (neither "9\\,901" "910") "not 910"
            Expect.isTrue (neither "0.0000673" ".0000672") "two decimals one apart"
        }
        testPropertyWithConfig config "a number grouped by spaces is that number, never the next one or a list" <|
            Prop.forAll (Arb.fromGen genBig) (fun n ->
                let s = grouped " " n
                both s (string n) && neither s (string (n + 1L))
                && MathVerifier.IsCorrect(sprintf "So the total is %s." s, string n, any)
                && not (MathVerifier.IsCorrect(sprintf "So the total is %s." s, string (n - 1L), any)))
        testPropertyWithConfig config "w,f with a fractional part of 2, 4 or 5 digits is w.f; a changed digit is not" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (0, 99999)) (Gen.elements [ 2; 4; 5 ]) |> Gen.zip (Gen.choose (0, 9999)))) (fun (f, (w, digits)) ->
                let frac = (string f).PadLeft(digits, '0').Substring(0, digits)
                let other = frac.Substring(0, digits - 1) + string ((int frac.[digits - 1] - int '0' + 1) % 10)
                both (sprintf "%d,%s" w frac) (sprintf "%d.%s" w frac)
                && neither (sprintf "%d,%s" w frac) (sprintf "%d.%s" w other)
                && MathVerifier.IsCorrect(sprintf "The length is %d,%s" w frac, sprintf "%d.%s" w frac, any)
                && not (MathVerifier.IsCorrect(sprintf "The length is %d,%s" w frac, sprintf "%d.%s" w other, any)))
        testPropertyWithConfig config "money and units glued or in \\text are the amount; one cent more is not" <|
            Prop.forAll (Arb.fromGen (Gen.zip genBig (Gen.choose (0, 99)))) (fun (n, c) ->
                let amount = sprintf "%s.%02d" (grouped "," n) c
                let plain = sprintf "%d.%02d" n c
                let next = sprintf "%d.%02d" (if c = 99 then n + 1L else n) ((c + 1) % 100)
                [ amount + "€"; amount + "m²"; sprintf "%s \\text{ dollars}" amount; sprintf "\\$%s" (grouped ",\\!" n + sprintf ".%02d" c) ]
                |> List.forall (fun a -> both a plain && neither a next))
        testPropertyWithConfig config "a bare \\frac{p}{q} at the end is the answer; its reciprocal or p+1 is not" <|
            Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 999)) (Gen.choose (1, 999)) |> Gen.filter (fun (p, q) -> p <> q))) (fun (p, q) ->
                let text = sprintf "Altogether this gives \\frac{%d}{%d}." p q
                MathVerifier.IsCorrect(text, sprintf "%d/%d" p q, any)
                && not (MathVerifier.IsCorrect(text, sprintf "%d/%d" q p, any))
                && not (MathVerifier.IsCorrect(text, sprintf "%d/%d" (p + 1) q, any)))
        testPropertyWithConfig config "a leading-dot decimal .d is 0.d, never d or 0.d plus one digit" <|
            Prop.forAll (Arb.fromGen (Gen.choose (1, 99999))) (fun d ->
                let text = sprintf "so p = .%d" d
                MathVerifier.IsCorrect(text, sprintf "0.%d" d, any)
                && not (MathVerifier.IsCorrect(text, string d, any))
                && not (MathVerifier.IsCorrect(text, sprintf "0.%d1" d, any)))
    ]
