using NextToken.Chat;
using NextToken.Models;
using NextToken.Tokenization;

namespace NextToken.Inspection;

/// <summary>How much the system prompt still matters after one turn of a conversation.</summary>
public sealed record DriftTurn(
    int Turn, int ContextTokens, int SystemTokens, int Distance,
    double SystemShare, double[] SystemSharePerLayer, double SinkShare, double KlWithoutSystem);

/// <summary>
/// The long-conversation claim made measurable: after each turn, the attention the newest turn's
/// tokens pay to the system prompt (averaged over heads and layers, and per layer), with the first
/// token's "attention sink" kept apart; how far back the system prompt is; and KL between the
/// next-token distribution with and without the system prompt.
/// </summary>
public sealed class DriftMeter(LanguageModel model, ChatTemplate template, string bosToken = "", string eosToken = "")
{
    /// <summary>The turn that no longer fit the context, when measuring stopped early (else null).</summary>
    public int? ContextFullAtTurn { get; private set; }

    public IEnumerable<DriftTurn> Measure(string systemPrompt, IReadOnlyList<ChatMessage> conversation, int reanchorEvery = 0)
    {
        int userTurns = 0, previousTokens = 0;
        ContextFullAtTurn = null;
        var history = new List<ChatMessage>();
        foreach (ChatMessage message in conversation)
        {
            ChatMessage turn = message;
            if (message.Role == "user")
            {
                userTurns++;
                if (reanchorEvery > 0 && userTurns % reanchorEvery == 0)
                    turn = message with { Content = $"(Reminder of your instructions: {systemPrompt})\n\n{message.Content}" };
            }
            history.Add(turn);
            if (message.Role != "user") continue; // measure where the model is about to answer
            DriftTurn? result = MeasureTurn(userTurns, systemPrompt, history, previousTokens);
            if (result is null)
            {
                ContextFullAtTurn = userTurns;
                yield break;
            }
            previousTokens = result.ContextTokens;
            yield return result;
        }
    }

    private DriftTurn? MeasureTurn(int turn, string systemPrompt, List<ChatMessage> history, int previousTokens)
    {
        string withSystem = template.Render([new ChatMessage("system", systemPrompt), .. history], true, bosToken, eosToken);
        string withoutSystem = template.Render(history, true, bosToken, eosToken);
        EncodedText encoded = Encode(withSystem);
        int[] ids = encoded.Ids;
        if (ids.Length > model.ContextLength) return null;

        // Every place the system prompt's text appears (it is restated when re-anchoring).
        var spans = new List<(int Start, int End)>();
        for (int at = withSystem.IndexOf(systemPrompt, StringComparison.Ordinal); at >= 0 && systemPrompt.Length > 0;
             at = withSystem.IndexOf(systemPrompt, at + systemPrompt.Length, StringComparison.Ordinal))
            spans.Add(TokenSpan(encoded, at, at + systemPrompt.Length));
        if (spans.Count == 0) throw new NextTokenException($"the chat template '{template.Name}' dropped the system prompt; drift cannot be measured with it");

        var (logits, cache) = model.RunWithCache(ids, n => n.EndsWith(HookNames.PatternSuffix, StringComparison.Ordinal));
        int newest = Math.Min(previousTokens, ids.Length - 1); // this turn's tokens: everything after the previous context
        var perLayer = new double[model.LayerCount];
        double sink = 0;
        for (int l = 0; l < model.LayerCount; l++)
        {
            CachedActivation pattern = cache[HookNames.Pattern(l)];
            foreach (var (start, end) in spans)
                perLayer[l] += AttentionShares.MeanShare(pattern, newest, ids.Length, Math.Max(start, 1), end); // position 0 is the sink, not instructions
            sink += AttentionShares.MeanShare(pattern, newest, ids.Length, 0, 1);
        }
        int[] without = Encode(withoutSystem).Ids;
        var logitsWithout = new float[model.VocabSize];
        model.Forward(model.CreateState(), without, logitsWithout);
        double kl = DistributionComparison.Compare(logits.AsSpan((ids.Length - 1) * model.VocabSize, model.VocabSize), logitsWithout, 1).KlAB;
        return new DriftTurn(turn, ids.Length, spans.Sum(s => s.End - s.Start), ids.Length - spans[^1].End,
            perLayer.Average(), perLayer, sink / model.LayerCount, kl);
    }

    private EncodedText Encode(string prompt)
    {
        Vocabulary vocabulary = model.Tokenizer.Vocabulary;
        bool addBos = vocabulary.AddBos && (bosToken.Length == 0 || !prompt.StartsWith(bosToken, StringComparison.Ordinal));
        return model.Tokenizer.Encode(prompt, addBos, parseSpecial: true);
    }

    /// <summary>The tokens whose characters fall inside [start, end).</summary>
    private static (int Start, int End) TokenSpan(EncodedText encoded, int start, int end)
    {
        int first = -1, last = -1;
        for (int i = 0; i < encoded.Count; i++)
        {
            var (s, e) = encoded.Offsets[i];
            if (e > start && s < end && e > s)
            {
                if (first < 0) first = i;
                last = i;
            }
        }
        return first < 0 ? (0, 0) : (first, last + 1);
    }

    /// <summary>A deterministic conversation of <paramref name="turns"/> user/assistant exchanges, for when none is given.</summary>
    public static List<ChatMessage> SyntheticConversation(int turns)
    {
        string[] questions =
        [
            "How should I partition a Kafka topic for order events?", "What happens when a consumer group rebalances?",
            "Should retries go through a dead-letter queue?", "How do I keep message ordering per customer?",
            "When is RabbitMQ a better fit than Kafka?", "How many replicas does a topic need?",
            "What is exactly-once delivery really worth?", "How do I size the retention period?",
        ];
        string[] answers =
        [
            "Partition by a key that keeps related events together, and size for peak throughput.",
            "Partitions are reassigned; consumers pause, commit offsets and resume on their new partitions.",
            "Yes, after a bounded number of attempts, so poison messages do not block the stream.",
            "Use the customer id as the key so each customer's events land in one partition.",
            "When you need flexible routing and per-message acknowledgement more than replay.",
            "Three replicas with min.insync.replicas of two is the usual balance.",
            "It costs throughput; most systems do better with idempotent consumers.",
            "From the longest replay you need plus a margin, checked against disk budget.",
        ];
        var messages = new List<ChatMessage>();
        for (int i = 0; i < turns; i++)
        {
            messages.Add(new ChatMessage("user", questions[i % questions.Length]));
            messages.Add(new ChatMessage("assistant", answers[i % answers.Length]));
        }
        return messages;
    }
}
