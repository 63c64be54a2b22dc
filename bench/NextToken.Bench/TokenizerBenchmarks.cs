using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Tokenization;
using SharpToken;

namespace NextToken.Bench;

/// <summary>
/// GPT-2 encoding speed on real prose, ours against SharpToken's r50k_base. MB/s is the
/// corpus size (printed at setup) divided by the mean time.
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    private string _text = "";
    private Tokenizer _ours = null!;
    private GptEncoding _sharpToken = null!;

    [GlobalSetup]
    public void Setup()
    {
        _text = Corpus.Text();
        using var file = GgufFile.Open(Corpus.Shared("fixtures", "vocab", "ggml-vocab-gpt-2.gguf"));
        _ours = Tokenizer.Load(file);
        _sharpToken = GptEncoding.GetEncoding("r50k_base");
        Console.WriteLine($"// corpus: {System.Text.Encoding.UTF8.GetByteCount(_text)} UTF-8 bytes");
    }

    [Benchmark(Baseline = true)]
    public int SharpTokenR50kBase() => _sharpToken.Encode(_text).Count;

    [Benchmark]
    public int NextTokenByteLevelBpe() => _ours.Encode(_text).Count;
}
