using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>
/// TorchSharp's AdamW with the same update, operation for operation (so the same bits and the same
/// optimizer.bin), except that every Scalar it passes to libtorch is held until the call returns.
/// TorchSharp 0.107's AdamW.step passes temporaries (<c>p.mul_(1 - lr * wd)</c> converts the double to a
/// Scalar) whose only reference dies once the native handle is read; Scalar has a finalizer and no
/// GC.KeepAlive, so a garbage collection started by another thread during the native call can free the
/// c10::Scalar libtorch is still reading ("Unknown scalar type"). A single-threaded run never sees it;
/// the test suite, with other threads allocating, did. Reproducer: one thread looping
/// <c>x.mul_(Scalar.op_Implicit(1.0))</c> while another allocates gave 219 such errors in 10 M calls (60 s).
/// The step also updates one parameter at a time in pieces of at most a million elements (a million-element
/// temporary at a time, where TorchSharp's holds two model-sized ones until the step ends); the update is
/// elementwise, so the pieces change no bit.
/// The class is nested so that its Name is "AdamW": TorchSharp writes and checks the optimizer's type name
/// in optimizer.bin, so checkpoints stay interchangeable with TorchSharp's AdamW in both directions.
/// </summary>
internal static class Optimizers
{
    public sealed class AdamW : TorchSharp.Modules.AdamW
    {
        /// <summary>Elements updated per piece of a parameter: a multiple of every SIMD width, so each piece's vector
        /// loop and tail cover the same elements as the whole tensor's, and one temporary of this size at a time.</summary>
        public const long DefaultPieceElements = 1 << 20;

        private readonly long pieceElements;

        public AdamW(IEnumerable<Parameter> parameters, double lr, double weightDecay, long pieceElements = DefaultPieceElements)
            : base(parameters, lr: lr, weight_decay: weightDecay)
        {
            if (pieceElements <= 0 || pieceElements % 64 != 0) throw new ArgumentOutOfRangeException(nameof(pieceElements), pieceElements, "a positive multiple of 64");
            this.pieceElements = pieceElements;
        }

        public override Tensor step(Func<Tensor>? closure = null)
        {
            Tensor? loss = null;
            if (closure is not null)
            {
                using var grad = enable_grad();
                loss = closure();
            }
            using var noGrad = no_grad();
            foreach (var group in _parameter_groups)
            {
                var o = (Options)group.Options;
                double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, eps = o.eps!.Value, lr = o.LearningRate!.Value;
                double decay = o.weight_decay!.Value;
                if (o.amsgrad!.Value || o.maximize!.Value) throw new NotSupportedException("amsgrad and maximize are not used by Popo");
                using Scalar keep = 1 - lr * decay, b1 = beta1, b2 = beta2, oneMinusB1 = 1 - beta1, oneMinusB2 = 1 - beta2, epsilon = eps;
                foreach (var param in group.Parameters)
                {
                    // One scope per parameter, not one for the step: TorchSharp's step keeps every parameter's
                    // denominator until it ends, twice the model's size in temporaries at the peak of a step.
                    using var scope = NewDisposeScope();
                    var g = param.grad;
                    if (g is null) continue;
                    var state = (State)_state[param.Handle];
                    state.step += 1;
                    double correction1 = 1 - Math.Pow(beta1, state.step), correction2 = 1 - Math.Pow(beta2, state.step);
                    using Scalar root = Math.Sqrt(correction2), stepSize = -(lr / correction1);
                    Tensor p = Flat(param), m = Flat(state.exp_avg), v = Flat(state.exp_avg_sq), gf = Flat(g);
                    long n = p.numel();
                    for (long start = 0; start < n; start += pieceElements)
                    {
                        using var piece = NewDisposeScope();
                        long c = Math.Min(pieceElements, n - start);
                        Tensor pc = p.narrow(0, start, c), mc = m.narrow(0, start, c), vc = v.narrow(0, start, c), gc = gf.narrow(0, start, c);
                        pc.mul_(keep);
                        mc.mul_(b1).add_(gc, alpha: oneMinusB1);
                        vc.mul_(b2).addcmul_(gc, gc, value: oneMinusB2);
                        var denom = vc.sqrt().div_(root).add_(epsilon);
                        pc.addcdiv_(mc, denom, value: stepSize);
                    }
                }
            }
            return loss!;
        }

        /// <summary>A flat view of a contiguous tensor (parameters, their gradients and moments are); in-place updates of it update the tensor.</summary>
        private static Tensor Flat(Tensor t) =>
            t.is_contiguous() ? t.detach().view(-1) : throw new InvalidOperationException("AdamW: a parameter, gradient or moment is not contiguous");
    }
}
