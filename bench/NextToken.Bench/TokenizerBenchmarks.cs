using BenchmarkDotNet.Attributes;
using NextToken.Gguf;
using NextToken.Tokenization;
using SharpToken;

namespace NextToken.Bench;

/// <summary>
/// Encoding speed on real prose, ours against SharpToken: GPT-2 (r50k_base, our scanner pre-tokenizer)
/// and GPT-4o (o200k_base, our tokenizer.json with its Split regex on .NET Regex). MB/s is the corpus
/// size (printed at setup) divided by the mean time.
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    private string _text = "";
    private Tokenizer _ours = null!;
    private GptEncoding _sharpToken = null!;
    private Tokenizer _oursGpt4o = null!;
    private GptEncoding _sharpTokenO200k = null!;

    [GlobalSetup]
    public void Setup()
    {
        _text = Corpus.Text();
        using var file = GgufFile.Open(Corpus.Shared("fixtures", "vocab", "ggml-vocab-gpt-2.gguf"));
        _ours = Tokenizer.Load(file);
        _sharpToken = GptEncoding.GetEncoding("r50k_base");
        _oursGpt4o = HuggingFaceTokenizer.FromTokenizerJson(Corpus.Shared("fixtures", "tokenizers", "gpt-4o", "tokenizer.json"), null, null);
        _sharpTokenO200k = GptEncoding.GetEncoding("o200k_base");
        Console.WriteLine($"// corpus: {System.Text.Encoding.UTF8.GetByteCount(_text)} UTF-8 bytes");
    }

    [Benchmark(Baseline = true)]
    public int SharpTokenR50kBase() => _sharpToken.Encode(_text).Count;

    [Benchmark]
    public int NextTokenByteLevelBpe() => _ours.Encode(_text).Count;

    [Benchmark]
    public int SharpTokenO200kBase() => _sharpTokenO200k.Encode(_text).Count;

    [Benchmark]
    public int NextTokenGpt4oTokenizerJson() => _oursGpt4o.Encode(_text).Count;
}
