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
/// The class is nested so that its Name is "AdamW": TorchSharp writes and checks the optimizer's type name
/// in optimizer.bin, so checkpoints stay interchangeable with TorchSharp's AdamW in both directions.
/// </summary>
public static class HeldScalars
{
    public sealed class AdamW : TorchSharp.Modules.AdamW
    {
        public AdamW(IEnumerable<Parameter> parameters, double lr, double weightDecay)
            : base(parameters, lr: lr, weight_decay: weightDecay) { }

        public override Tensor step(Func<Tensor>? closure = null)
        {
            Tensor? loss = null;
            if (closure is not null)
            {
                using var grad = enable_grad();
                loss = closure();
            }
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            foreach (var group in _parameter_groups)
            {
                var o = (Options)group.Options;
                double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, eps = o.eps!.Value, lr = o.LearningRate!.Value;
                double decay = o.weight_decay!.Value;
                if (o.amsgrad!.Value || o.maximize!.Value) throw new NotSupportedException("amsgrad and maximize are not used by Popo");
                using Scalar keep = 1 - lr * decay, b1 = beta1, b2 = beta2, oneMinusB1 = 1 - beta1, oneMinusB2 = 1 - beta2, epsilon = eps;
                foreach (var param in group.Parameters)
                {
                    var g = param.grad;
                    if (g is null) continue;
                    var state = (State)_state[param.Handle];
                    state.step += 1;
                    param.mul_(keep);
                    double correction1 = 1 - Math.Pow(beta1, state.step), correction2 = 1 - Math.Pow(beta2, state.step);
                    state.exp_avg.mul_(b1).add_(g, alpha: oneMinusB1);
                    state.exp_avg_sq.mul_(b2).addcmul_(g, g, value: oneMinusB2);
                    using Scalar root = Math.Sqrt(correction2), stepSize = -(lr / correction1);
                    var denom = (state.exp_avg_sq.sqrt() / root).add_(epsilon);
                    param.addcdiv_(state.exp_avg, denom, value: stepSize);
                }
            }
            return loss!;
        }
    }
}
