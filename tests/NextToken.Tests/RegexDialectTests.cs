using System.Text.RegularExpressions;
using NextToken.Tokenization;

namespace NextToken.Tests;

/// <summary>Oniguruma's possessive quantifiers, which .NET lacks, become atomic groups.</summary>
public class RegexDialectTests
{
    [Theory]
    [InlineData(@"a?+b", @"(?>a?)b")]
    [InlineData(@"[^\s\p{L}]++x", @"(?>[^\s\p{L}]+)x")]
    [InlineData(@"\p{N}*+", @"(?>\p{N}*)")]
    [InlineData(@"(ab|c){1,3}+d", @"(?>(ab|c){1,3})d")]
    [InlineData(@"a+?b", @"a+?b")]
    [InlineData(@"(?i:x)|y+", @"(?i:x)|y+")]
    [InlineData(@"\p{N}{1,3}| ?[^\s]+", @"\p{N}{1,3}| ?[^\s]+")]
    [InlineData(@"a{x}+", @"a{x}+")]
    [InlineData(@"[]+]++", @"(?>[]+]+)")]
    public void ToDotNet_RewritesOnlyPossessiveQuantifiers(string oniguruma, string dotNet) =>
        Assert.Equal(dotNet, RegexDialect.ToDotNet(oniguruma));

    [Theory]
    [InlineData("Hello world's 1234567 numbers!!!\n\n  and   spaces\t\ttabs 🙂🙂 ÀÉÎ naïve—dash")]
    [InlineData("'S 'LL 'Ve x'd ...?!  \r\n\r\n")]
    public void Gpt4Split_PossessiveAndAtomicForms_SplitAlike(string text)
    {
        const string possessive = @"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
        string[] converted = new Regex(RegexDialect.ToDotNet(possessive)).Matches(text).Select(m => m.Value).ToArray();
        string[] atomic = new Regex(NextToken.Training.BpeTrainer.Gpt4Regex).Matches(text).Select(m => m.Value).ToArray();
        Assert.Equal(atomic, converted);
        Assert.Equal(text, string.Concat(converted));
    }
}
