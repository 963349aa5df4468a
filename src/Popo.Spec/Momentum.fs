/// The EMA (momentum) target of POPO's Siamese branch (docs/design.md §2.8): after every optimizer step
/// xi <- tau xi + (1 - tau) theta, with xi_0 = theta_0. Parameters are flattened to Vector [P].
/// Indexing: xi_t is the target after the t updates that used theta_0 .. theta_{t-1} in that order.
module Popo.Spec.Momentum

open MathNet.Numerics.LinearAlgebra

let private checkTau (tau: float) =
    if not (tau >= 0.0 && tau <= 1.0) then invalidArg "tau" (sprintf "tau must lie in [0, 1], got %g" tau)

/// One EMA update: xi' = tau xi + (1 - tau) theta. xi, theta: [P]. docs/design.md §2.8 (tau = 0.995 default;
/// tau = 0 copies the online policy, tau = 1 freezes the target).
let update (tau: float) (xi: Vector<float>) (theta: Vector<float>) : Vector<float> =
    checkTau tau
    tau * xi + (1.0 - tau) * theta

/// The targets xi_0 .. xi_t produced by applying `update` with theta_0 .. theta_{t-1}.
/// thetas: t vectors [P]; result: t + 1 vectors [P], the first being xi_0.
let trajectory (tau: float) (xi0: Vector<float>) (thetas: Vector<float> list) : Vector<float> list =
    List.scan (update tau) xi0 thetas

/// Closed-form coefficients of xi_t = c_0 xi_0 + sum_{s=0}^{t-1} c_{s+1} theta_s: c_0 = tau^t and
/// c_{s+1} = (1 - tau) tau^(t-1-s). They are nonnegative and sum to 1. Result: [t + 1].
let coefficients (tau: float) (t: int) : float[] =
    checkTau tau
    if t < 0 then invalidArg "t" (sprintf "t must be >= 0, got %d" t)
    Array.init (t + 1) (fun k -> if k = 0 then pown tau t else (1.0 - tau) * pown tau (t - k))

/// Closed form xi_t = tau^t xi_0 + (1 - tau) sum_{s=0}^{t-1} tau^(t-1-s) theta_s over all given thetas.
/// thetas: t vectors [P]; result: [P].
let closedForm (tau: float) (xi0: Vector<float>) (thetas: Vector<float> list) : Vector<float> =
    let c = coefficients tau thetas.Length
    thetas |> List.mapi (fun s theta -> c.[s + 1] * theta) |> List.fold (+) (c.[0] * xi0)

/// Lag of the target behind a parameter moving at unit speed (theta_s = theta_0 + s v, xi_0 = theta_0),
/// measured against the latest theta used: (theta_{t-1} - xi_t) / v = tau (1 - tau^(t-1)) / (1 - tau)
/// for t >= 1 (t - 1 when tau = 1); it rises to tau / (1 - tau) steps. Derivation in proofs/momentum.md.
let linearLag (tau: float) (t: int) : float =
    checkTau tau
    if t < 1 then invalidArg "t" (sprintf "t must be >= 1, got %d" t)
    if tau = 1.0 then float (t - 1) else tau * (1.0 - pown tau (t - 1)) / (1.0 - tau)

/// Steady-state lag tau / (1 - tau) in steps (infinite for tau = 1): the EMA's effective delay.
let steadyStateLag (tau: float) : float =
    checkTau tau
    if tau = 1.0 then infinity else tau / (1.0 - tau)
