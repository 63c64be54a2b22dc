using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/NextToken.Bench -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(NextToken.Bench.Corpus).Assembly).Run(args);
