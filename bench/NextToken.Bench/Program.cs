using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/NextToken.Bench -- --filter '*'
// dotnet run -c Release --project bench/NextToken.Bench -- --alternate-resident [rounds]: ResidentDecodeBenchmarks' kernels
// timed in alternation within one process (minimum of each), for a machine whose load moves between BenchmarkDotNet's runs.
if (args.Length > 0 && args[0] == "--alternate-resident")
    NextToken.Bench.ResidentDecodeBenchmarks.Alternate(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 400);
else
    BenchmarkSwitcher.FromAssembly(typeof(NextToken.Bench.Corpus).Assembly).Run(args);
