/// The verifier's relations (issue 28, group 7), through the public MathVerifier: a relation read in either
/// direction is the same relation (a < x is x > a), a reversed one is not (x > y is not y > x), and a double
/// inequality written backwards keeps each end's strictness (7 > x \ge -2 is [-2, 7)).
module Popo.Tests.Catch.Relations

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.MathVerify

let private agrees (answer: string) (gold: string) = MathVerifier.IsCorrect(sprintf "The answer is $\\boxed{%s}$." answer, gold)

let private flip = function "<" -> ">" | ">" -> "<" | "\\le" -> "\\ge" | "\\ge" -> "\\le" | op -> op

/// One side of a relation: the variable x, the variable y, or a number. Relations in one variable use only x
/// (the verifier reads `x > 3` as the interval (3, inf), whatever its variable's name), and never two numbers
/// (a relation between numbers is a truth value, so `1 < 2` and `3 < 5` would both be "true").
type private Side = X | Y | Num of int
let private text = function X -> "x" | Y -> "y" | Num n -> string n

/// A relation `l op r` between x and a number, or between x and y.
let private relation =
    gen {
        let! op = Gen.elements [ "<"; ">"; "\\le"; "\\ge" ]
        let! n = Gen.choose (-9, 9)
        let! pair = Gen.elements [ X, Num n; Num n, X; X, Y; Y, X ]
        return fst pair, op, snd pair
    }

let private show (l, op, r) = sprintf "%s %s %s" (text l) op (text r)

/// The same relation: the same sides in the same order with the same symbol, or both reversed with the symbol flipped.
let private same (l1, op1, r1) (l2, op2, r2) = (l1 = l2 && op1 = op2 && r1 = r2) || (l1 = r2 && r1 = l2 && op1 = flip op2)

[<Tests>]
let tests =
    testList "catch/verifier-relations" [
        test "a relation read in either direction" {
            for answer, gold in [ "a < x", "x > a"; "x \\le y", "y \\ge x"; "3 < x", "x > 3"; "-2 \\ge x", "x \\le -2"; "x < 3", "(-\\infty, 3)" ] do
                Expect.isTrue (agrees answer gold) (sprintf "%s is %s" answer gold)
                Expect.isTrue (agrees gold answer) (sprintf "%s is %s" gold answer)
        }

        test "a reversed or re-stricted relation is another relation" {
            for answer, gold in [ "x > y", "y > x"; "a < x", "x < a"; "x > 3", "3 > x"; "x \\ge 3", "x > 3"; "x < y", "x \\le y" ] do
                Expect.isFalse (agrees answer gold) (sprintf "%s is not %s" answer gold)
        }

        test "double inequalities written backwards keep each end's strictness" {
            let interval = "[-2, 7)"
            for answer in [ "7 > x \\ge -2"; "-2 \\le x < 7"; "x \\in [-2, 7)" ] do
                Expect.isTrue (agrees answer interval) (sprintf "%s is [-2, 7)" answer)
            Expect.isTrue (agrees "7 > x \\ge -2" "-2 \\le x < 7") "backwards against forwards"
            for answer in [ "7 \\ge x > -2"; "7 > x > -2"; "7 \\ge x \\ge -2"; "-2 < x \\le 7" ] do
                Expect.isFalse (agrees answer interval) (sprintf "%s is not [-2, 7)" answer)
        }

        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 300 } "two generated relations verify as equal iff they are the same relation, read either way" <|
            Prop.forAll (Arb.fromGen (Gen.zip relation relation)) (fun (a, b) ->
                Expect.equal (agrees (show a) (show b)) (same a b) (sprintf "%s against gold %s" (show a) (show b)))

        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 200 } "a double inequality equals its reversal and its interval, and no other strictness" <|
            Prop.forAll (Arb.fromGen (gen {
                let! lo = Gen.choose (-20, 5)
                let! width = Gen.choose (1, 20)
                let! loClosed = Gen.elements [ true; false ]
                let! hiClosed = Gen.elements [ true; false ]
                let! otherLo = Gen.elements [ true; false ]
                let! otherHi = Gen.elements [ true; false ]
                return lo, lo + width, loClosed, hiClosed, otherLo, otherHi })) (fun (lo, hi, loClosed, hiClosed, otherLo, otherHi) ->
                let less closed = if closed then "\\le" else "<"
                let forwards lc hc = sprintf "%d %s x %s %d" lo (less lc) (less hc) hi
                let backwards lc hc = sprintf "%d %s x %s %d" hi (flip (less hc)) (flip (less lc)) lo
                let interval = sprintf "%c%d, %d%c" (if loClosed then '[' else '(') lo hi (if hiClosed then ']' else ')')
                let sameEnds = (otherLo = loClosed && otherHi = hiClosed)
                Expect.isTrue (agrees (backwards loClosed hiClosed) interval) (sprintf "%s is %s" (backwards loClosed hiClosed) interval)
                Expect.isTrue (agrees (backwards loClosed hiClosed) (forwards loClosed hiClosed)) "backwards is forwards"
                Expect.equal (agrees (backwards otherLo otherHi) (forwards loClosed hiClosed)) sameEnds
                    (sprintf "%s against %s" (backwards otherLo otherHi) (forwards loClosed hiClosed)))
    ]
