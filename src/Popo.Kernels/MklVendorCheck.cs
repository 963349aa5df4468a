using System.Runtime.InteropServices;
using TorchSharp;

namespace Popo.Kernels;

/// <summary>
/// The MKL inside libtorch_cpu chooses its tuned GEMM kernels only when the CPU's vendor string is "GenuineIntel";
/// on AMD it runs slower generic code whatever the CPU supports (Zen 3, one core: 50 GFLOP/s on the medium model's
/// shapes against 66 with the tuned AVX2 kernels, which OpenBLAS, the speed peer, uses natively). The whole test is
/// one exported function, <c>mkl_serv_intel_cpu_true</c>, reached through the PLT. Making it return 1 lets MKL pick
/// kernels by the CPU's instruction sets, as it does on Intel: the widely used "fake Intel" fix, applied in process
/// so that no preload library or compiler is needed. Done once, before the first matmul; x86-64 Linux only.
/// The default bypasses it on AMD CPUs with AVX-512 (Zen 4 and later), where MKL then runs the AVX-512 kernels it
/// runs on Intel's AVX-512 CPUs: float32 GEMMs 20% faster on Zen 4, and the whole suite, bit-for-bit resume and
/// chunked-head equalities included, passes with them there as it does on Intel. On AVX2-only AMD CPUs (Zen 3) it is
/// opt-in: the tuned AVX2 kernels' float32 results depend on the batch's shape, which broke the chunked head's
/// bit-for-bit equality with the full head and bit-identical resume on Zen 3. <c>POPO_MKL_VENDOR_CHECK=bypass</c>
/// bypasses it on any AMD CPU, <c>=keep</c> keeps MKL as shipped.
/// </summary>
internal static class MklVendorCheck
{
    public const string Variable = "POPO_MKL_VENDOR_CHECK";
    private const string Symbol = "mkl_serv_intel_cpu_true";

    private static readonly Lazy<string> Outcome = new(Apply);

    /// <summary>
    /// What was done: "bypassed" (MKL now dispatches on instruction sets), "intel" (nothing to do), "kept" (asked,
    /// or the default without AVX-512), or "not applicable: ..." (not x86-64 Linux, or this libtorch has no such MKL).
    /// </summary>
    public static string Configure() => Outcome.Value;

    private static string Apply()
    {
        var asked = Environment.GetEnvironmentVariable(Variable) ?? "";
        if (asked is not ("" or "bypass" or "keep"))
            throw new InvalidOperationException($"{Variable}={asked}: expected bypass, keep or unset");
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return "not applicable: not x86-64 Linux";
        _ = torch.get_num_threads();   // loads libtorch
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var library) || !NativeLibrary.TryGetExport(library, Symbol, out var function))
            return "not applicable: libtorch_cpu has no " + Symbol;
        if (Call(function) == 1) return "intel";
        if (asked == "keep" || (asked == "" && !CpuFlags.Has("avx512f"))) return "kept";
        Patch(function);
        if (Call(function) != 1) return "not applicable: the patch did not take";
        WarmUpVectorMath();
        return "bypassed";
    }

    /// <summary>
    /// Runs MKL's vector math (libtorch's cos, sin, exp, log, tanh on the CPU go through it) twice over every thread,
    /// results dropped. After the bypass, the first such call in a process sometimes ran one thread's share through a
    /// code path accurate to only about 1e-4. It was seen when a pair of threads split a [1, 102, 32] cos, with the
    /// second half off by up to 1.5e-4, while the same call made again gave the accurate values. That first call builds
    /// the rotary tables, so a seeded run then drew a different rollout: 3 of 12 24-layer runs and 7 of 54 2-layer
    /// ones (24 of 24 of the latter matched with the warm-up). A bare process with this setup showed it in 2 of 12
    /// starts without the warm-up and 0 of 16 with it, and 0 of 14 without the bypass (docs/benchmark-log.md, "A
    /// rollout that differs between identical runs"). MKL is closed, so this is what the measurements support, not a
    /// mechanism read from its code.
    /// </summary>
    private static void WarmUpVectorMath()
    {
        using var scope = torch.NewDisposeScope();
        foreach (var dtype in new[] { torch.ScalarType.Float32, torch.ScalarType.Float64 })
        {
            // 2,048 elements per thread and more: libtorch's vector-math grain, so every thread gets a share.
            var x = torch.linspace(0.1, 3.0, 4096L * Math.Max(1, torch.get_num_threads()), dtype: dtype);
            for (var round = 0; round < 2; round++)
            {
                using var inner = torch.NewDisposeScope();
                _ = (x.cos(), x.sin(), x.exp(), x.log(), x.tanh(), x.sqrt(), x.sigmoid());
            }
        }
    }

    private static unsafe int Call(IntPtr function) => ((delegate* unmanaged<int>)function)();

    /// <summary>
    /// Overwrites the function's first bytes with <c>mov eax, 1; ret</c>. The store is one aligned 8-byte write (the
    /// last two bytes keep their old values), so a thread entering the function sees either version whole.
    /// </summary>
    private static unsafe void Patch(IntPtr function)
    {
        if ((long)function % 8 != 0) throw new InvalidOperationException($"{Symbol} is not 8-byte aligned");
        var page = Environment.SystemPageSize;
        var start = (IntPtr)((long)function & ~(long)(page - 1));
        var length = (UIntPtr)(function + 8 - start);
        if (mprotect(start, length, ProtRead | ProtWrite | ProtExec) != 0)
            throw new InvalidOperationException($"mprotect failed (errno {Marshal.GetLastPInvokeError()}) making {Symbol} writable");
        var old = BitConverter.GetBytes(*(long*)function);
        byte[] code = [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3, old[6], old[7]];
        Volatile.Write(ref *(long*)function, BitConverter.ToInt64(code));
        mprotect(start, length, ProtRead | ProtExec);
    }

    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;

    [DllImport("libc", SetLastError = true)]
    private static extern int mprotect(IntPtr address, UIntPtr length, int protection);
}
