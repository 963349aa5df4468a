using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Runtime;

/// <summary>Versions of the native stack and a smoke check that libtorch loads and differentiates.</summary>
internal static class TorchRuntime
{
    public static string TorchSharpVersion =>
        typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>The libtorch version the native library reports (e.g. "2.10.0").</summary>
    public static string LibTorchVersion => torch.__version__;

    /// <summary>Resolves "cpu" / "cuda" / "cuda:N" to a device, failing clearly when CUDA is absent.</summary>
    public static Device ResolveDevice(string name)
    {
        var device = new Device(name);
        if (device.type == DeviceType.CUDA && !torch.cuda.is_available())
            throw new InvalidOperationException(
                $"--device {name}: this build of libtorch has no CUDA support (or no GPU is visible). " +
                "Replace libtorch-cpu-linux-x64 with a CUDA libtorch package (see README, 'GPU').");
        return device;
    }

    /// <summary>
    /// y = sum((W x)^2) for W = [[1,2],[3,4]], x = [1,1]: dy/dW = 2 (W x) x^T = [[6,6],[14,14]].
    /// Returns the gradient so callers can check the native autograd path end to end.
    /// </summary>
    public static double[] SmokeGradient(Device device)
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.tensor(new double[] { 1, 2, 3, 4 }, new long[] { 2, 2 }, dtype: ScalarType.Float64, device: device)
            .requires_grad_(true);
        var x = torch.ones(2, 1, dtype: ScalarType.Float64, device: device);
        var y = w.matmul(x).pow(2).sum();
        y.backward();
        return w.grad!.cpu().data<double>().ToArray();
    }
}
