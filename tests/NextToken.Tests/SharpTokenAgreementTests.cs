using System.Text;
using NextToken.Gguf;
using NextToken.Tokenization;
using SharpToken;
using Xunit.Abstractions;

namespace NextToken.Tests;

/// <summary>
/// Our GPT-2 tokenizer, built from GGUF metadata, against SharpToken's <c>r50k_base</c>, an
/// independent implementation of the same encoding, on generated text.
/// </summary>
public class SharpTokenAgreementTests(ITestOutputHelper output)
{
    private const int StringCount = 10_000;

    [Fact]
    public void Encode_GeneratedStrings_AgreesWithSharpTokenR50kBase()
    {
        using var file = GgufFile.Open(Fixtures.Vocab("ggml-vocab-gpt-2.gguf"));
        Tokenizer ours = Tokenizer.Load(file);
        GptEncoding reference = GptEncoding.GetEncoding("r50k_base");
        var generator = new TextGenerator(seed: 20261123);
        var failures = new List<string>();
        int compared = 0, mismatches = 0;
        for (int i = 0; i < StringCount; i++)
        {
            string text = generator.Next();
            int[] expected = reference.Encode(text).ToArray();
            int[] actual = ours.Encode(text).Ids;
            compared++;
            if (!actual.AsSpan().SequenceEqual(expected) && ++mismatches <= 10)
                failures.Add($"{System.Text.Json.JsonSerializer.Serialize(text)}: r50k_base [{string.Join(' ', expected)}], ours [{string.Join(' ', actual)}]");
            Assert.Equal(text, ours.Decode(actual));
        }
        output.WriteLine($"compared {compared} generated strings with SharpToken r50k_base: {compared - mismatches} identical");
        Console.WriteLine($"Tokenizer agreement: {compared} generated strings compared with SharpToken r50k_base");
        Assert.True(mismatches == 0, $"{mismatches} of {compared} differ; first ones:\n" + string.Join('\n', failures));
    }

    /// <summary>Random text mixing the things tokenizers get wrong.</summary>
    internal sealed class TextGenerator(int seed)
    {
        private readonly Random _random = new(seed); // a fixed seed: the corpus is the same on every run

        private static readonly string[] Words =
        [
            "the", "The", "cat", "Kafka", "RabbitMQ", "tokenization", "Understanding", "hello", "world", "über",
            "naïve", "café", "Führer", "señor", "привет", "мир", "Български", "γειά", "σου", "שלום", "مرحبا",
            "नमस्ते", "हिन्दी", "こんにちは", "日本語", "中文", "我想在", "안녕하세요", "ภาษาไทย", "កាន់តែ", "Cửa", "Việt",
        ];
        private static readonly string[] Emoji =
        [
            "🦙", "🚀", "😁", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "😶‍🌫️", "🇫🇷", "🏳️‍🌈", "❤️", "✋🏿", "🤖", "☕",
        ];
        private static readonly string[] Code =
        [
            "int main() {", "return 0;", "}", "for (int i = 0; i < n; i++)", "x += y * 2;", "def f(x):", "    return x**2",
            "if (a != b && c >= d)", "// comment", "/* block */", "var s = \"text\";", "<div class=\"a\">", "::", "=>", "0x1F",
            "a[i][j]", "std::vector<int>", "#include <stdio.h>", "SELECT * FROM t;", "$HOME/.cache", "λx.x",
        ];
        private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "n't", "'", "''"];
        private static readonly string[] Numbers = ["0", "7", "42", "2026", "3.14159", "1,000,000", "½", "²", "٣٤٥", "Ⅻ", "१२३", "-17", "1e-5", "99%"];
        private static readonly string[] Spaces = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\t\t", "\u00A0", "\u3000", "\u2009", " \t \n"];

        public string Next()
        {
            var sb = new StringBuilder();
            int parts = _random.Next(1, 12);
            for (int p = 0; p < parts; p++)
            {
                switch (_random.Next(9))
                {
                    case 0: case 1: sb.Append(Pick(Words)); break;
                    case 2: sb.Append(Pick(Emoji)); break;
                    case 3: sb.Append(Pick(Code)); break;
                    case 4: sb.Append(Pick(Contractions)); break;
                    case 5: sb.Append(Pick(Numbers)); break;
                    case 6: sb.Append(Pick(Spaces)); break;
                    case 7: AppendRandomCodePoints(sb); break;
                    default: sb.Append(' '); break;
                }
            }
            return sb.ToString();
        }

        private string Pick(string[] items) => items[_random.Next(items.Length)];

        private void AppendRandomCodePoints(StringBuilder sb)
        {
            // Blocks across scripts: Latin, Greek, Cyrillic, Arabic, Devanagari, Thai, CJK, Hangul,
            // symbols, and emoji from the supplementary planes.
            (int Lo, int Hi)[] blocks =
            [
                (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x600, 0x6FF), (0x900, 0x97F),
                (0xE00, 0xE7F), (0x2000, 0x206F), (0x2190, 0x23FF), (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00),
                (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF),
            ];
            int count = _random.Next(1, 8);
            for (int i = 0; i < count; i++)
            {
                var (lo, hi) = blocks[_random.Next(blocks.Length)];
                int cp = _random.Next(lo, hi + 1);
                if (cp is >= 0xD800 and <= 0xDFFF) continue;
                sb.Append(char.ConvertFromUtf32(cp));
            }
        }
    }
}
