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
        return Call(function) == 1 ? "bypassed" : "not applicable: the patch did not take";
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
