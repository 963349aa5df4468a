/// Softmax, log-softmax, entropy and the softmax Jacobian (DESIGN.md section 2.1 and section 4).
module Popo.Spec.Softmax

open MathNet.Numerics.LinearAlgebra

/// log softmax(z / T)_k = z_k / T - log sum_j exp(z_j / T); shifted by the maximum for stability.
let logSoftmaxT (temperature: float) (z: Vector<float>) : Vector<float> =
    let s = z / temperature
    let m = s.Maximum()
    let lse = m + log (s.Map(fun v -> exp (v - m)).Sum())
    s - lse

/// p = softmax(z / T).
let softmaxT (temperature: float) (z: Vector<float>) : Vector<float> =
    (logSoftmaxT temperature z).Map(fun v -> exp v)
