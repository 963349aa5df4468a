/// Named tolerances: spec identities hold to veryHigh; the float64 engine agrees with the spec to
/// engine64 and the float32 engine to engine32 (relative).
module Popo.Tests.Accuracy

let veryHigh = 1e-12
let engine64 = 1e-9
let engine32 = 1e-5
/// Central finite differences in float64 with h ~ 1e-6 leave O(h^2) truncation and O(eps/h) rounding.
let finiteDifference = 1e-6

/// |a - b| <= tol * max(1, |a|, |b|): relative for large values, absolute near zero.
let close (tol: float) (a: float) (b: float) =
    abs (a - b) <= tol * max 1.0 (max (abs a) (abs b))
