using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/NextToken.Bench -- --filter '*'
// dotnet run -c Release --project bench/NextToken.Bench -- --alternate-resident [rounds]: ResidentDecodeBenchmarks' kernels
// timed in alternation within one process (minimum of each), for a machine whose load moves between BenchmarkDotNet's runs.
// dotnet run -c Release --project bench/NextToken.Bench -- --half-shapes FILE [rounds]: F16 or BF16 decode of a model's matrices per shape, 1 and 2 threads.
// ... -- --bf16-batch [rounds] / --f16-batch [rounds]: BF16/F16 decode of 2–8 inputs, the lone kernel per input against HalfRows.BrainBatch/Batch, alternating (HalfBatchTiming).
// ... -- --alternate-f32 FILE.gguf [rounds] [rows:ahead …]: F32 decode (AVX2 narrow kernel variants) reading a mapped model's matrices from memory.
// ... -- --panel-rate [rounds]: the prompt panels' GFLOP/s per CPU-second (PANEL_FILE, PANEL_THREADS: see PanelRate).
// ... -- --alternate-wide [rounds] / --alternate-wide-stream FILE.gguf [rounds]: WidePlaneDecodeBenchmarks, the AVX-512 K-quant decode kernels (float and planes).
// ... -- --alternate-interleaved512 [rounds]: InterleavedBlock32WideBenchmarks, the repacked block-32 kernels alone, 512-bit AVX-512 BW against 256-bit AVX-VNNI.
// ... -- --alternate-tables [rounds] / --alternate-tables-stream FILE.gguf [rounds]: TableDecodeBenchmarks, AVX-512 exact Q4_K decode, planes against permute tables.
// ... -- --alternate-block32-wide [rounds] / --alternate-block32-wide-stream FILE.gguf [rounds]: Block32DecodeWideBenchmarks, the AVX-512 IQ4_NL/IQ4_XS/Q5_0/Q4_1/Q5_1 decode kernels.
// ... -- --alternate-interleaved [rounds]: InterleavedBlock32Benchmarks, --q8-activations block-32 decode and prompts repacked against the row kernels / float panels.
// ... -- --alternate-block32 [FILE.gguf] [rounds]: Block32DecodeBenchmarks, AVX2 Q4_1/Q5_0/Q5_1/IQ4_NL/IQ4_XS decode, resident and from the file's mapping.
// ... -- --alternate-q8k FILE.gguf [rounds]: Q8KDecodeTiming, --q8-activations K-quant decode (KQuantActivations) against the exact plane kernels, resident and from memory.
// ... -- --kquant-stream FILE.gguf [rounds] [threads]: KQuantStreamTiming, exact K-quant decode from memory (AVX2 planes, AVX-512 Q4_K tables) against a bare read in the same order, and resident.
// ... -- --alternate-stream FILE.gguf [rounds]: StreamDecodeBenchmarks, the AVX2 K-quant decode kernels reading a mapped model's rows from memory.
if (args.Length > 1 && args[0] == "--kquant-stream")
    NextToken.Bench.KQuantStreamTiming.Run(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 8, args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 1);
else if (args.Length > 0 && args[0] == "--alternate-interleaved512")
    NextToken.Bench.InterleavedBlock32WideBenchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 30);
else if (args.Length > 0 && args[0] == "--alternate-interleaved")
    NextToken.Bench.InterleavedBlock32Benchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 30);
else if (args.Length > 1 && args[0] == "--alternate-q8k")
    NextToken.Bench.Q8KDecodeTiming.Alternate(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
else if (args.Length > 0 && args[0] is "--bf16-batch" or "--f16-batch")
    NextToken.Bench.HalfBatchTiming.Run(args[0] == "--bf16-batch", args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 30);
else if (args.Length > 0 && args[0] == "--alternate-block32")
    NextToken.Bench.Block32DecodeBenchmarks.Alternate(args.Length > 1 ? args[1] : null, args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 400);
else if (args.Length > 0 && args[0] == "--panel-rate")
    NextToken.Bench.PanelRate.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 20, args.Skip(2).ToArray());
else if (args.Length > 1 && args[0] == "--alternate-f32")
    NextToken.Bench.F32StreamDecode.Alternate(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10, args.Skip(3).ToArray());
else if (args.Length > 0 && args[0] == "--alternate-block32-wide")
    NextToken.Bench.Block32DecodeWideBenchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 400);
else if (args.Length > 1 && args[0] == "--alternate-block32-wide-stream")
    NextToken.Bench.Block32DecodeWideBenchmarks.AlternateStream(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
else if (args.Length > 0 && args[0] == "--alternate-tables")
    NextToken.Bench.TableDecodeBenchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 400);
else if (args.Length > 1 && args[0] == "--alternate-tables-stream")
    NextToken.Bench.TableDecodeBenchmarks.AlternateStream(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
else if (args.Length > 0 && args[0] == "--alternate-wide")
    NextToken.Bench.WidePlaneDecodeBenchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 400);
else if (args.Length > 1 && args[0] == "--alternate-wide-stream")
    NextToken.Bench.WidePlaneDecodeBenchmarks.AlternateStream(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
else if (args.Length > 1 && args[0] == "--alternate-stream")
    NextToken.Bench.StreamDecodeBenchmarks.Alternate(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10);
else if (args.Length > 0 && args[0] == "--alternate-resident")
    NextToken.Bench.ResidentDecodeBenchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 400);
else if (args.Length > 0 && (args[0] == "--half-shapes" || args[0] == "--alternate-stream") && args.Length < 2)
    Console.Error.WriteLine($"error: {args[0]} needs a GGUF file: {args[0]} FILE [rounds]");
else if (args.Length > 1 && args[0] == "--half-shapes")
    NextToken.Bench.HalfDecodeShapes.Run(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20);
else
    BenchmarkSwitcher.FromAssembly(typeof(NextToken.Bench.Corpus).Assembly).Run(args);
