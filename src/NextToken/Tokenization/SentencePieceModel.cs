using System.Buffers.Binary;
using System.Text;

namespace NextToken.Tokenization;

/// <summary>
/// Reads a SentencePiece <c>tokenizer.model</c> (the <c>ModelProto</c> protobuf) directly: the pieces with
/// their scores and types, the trainer's model type and BOS/EOS/UNK ids, and the normalizer's dummy
/// prefix. BPE models become a <see cref="SentencePieceTokenizer"/>, which merges by piece score as
/// SentencePiece does.
/// </summary>
public static class SentencePieceModel
{
    public static SentencePieceTokenizer Load(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        var tokens = new List<string>();
        var scores = new List<float>();
        var types = new List<TokenType>();
        int modelType = 1, unknownId = 0, bosId = 1, eosId = 2;
        bool addDummyPrefix = true, removeExtraWhitespace = true, escapeWhitespace = true;
        var reader = new Reader(path, data, 0, data.Length);
        while (reader.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == 2: // SentencePiece
                {
                    var piece = reader.Message();
                    string text = "";
                    float score = 0;
                    int type = 1;
                    while (piece.Next(out int f, out int w))
                    {
                        if (f == 1 && w == 2) text = piece.String();
                        else if (f == 2 && w == 5) score = piece.Fixed32Float();
                        else if (f == 3 && w == 0) type = (int)piece.Varint();
                        else piece.Skip(w);
                    }
                    if (type is < 1 or > 6)
                        throw new NextTokenException($"{path}: piece {tokens.Count} (\"{text}\") has type {type}; expected 1 to 6");
                    tokens.Add(text);
                    scores.Add(score);
                    types.Add((TokenType)type);
                    break;
                }
                case 2 when wire == 2: // TrainerSpec
                {
                    var spec = reader.Message();
                    while (spec.Next(out int f, out int w))
                    {
                        if (w != 0) { spec.Skip(w); continue; }
                        long value = spec.Varint();
                        switch (f)
                        {
                            case 3: modelType = (int)value; break;
                            case 40: unknownId = (int)value; break;
                            case 41: bosId = (int)value; break;
                            case 42: eosId = (int)value; break;
                        }
                    }
                    break;
                }
                case 3 when wire == 2: // NormalizerSpec
                {
                    var spec = reader.Message();
                    while (spec.Next(out int f, out int w))
                    {
                        if (w != 0) { spec.Skip(w); continue; }
                        bool value = spec.Varint() != 0;
                        switch (f)
                        {
                            case 3: addDummyPrefix = value; break;
                            case 4: removeExtraWhitespace = value; break;
                            case 5: escapeWhitespace = value; break;
                        }
                    }
                    break;
                }
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (tokens.Count == 0) throw new NextTokenException($"{path}: no pieces; not a SentencePiece model");
        if (modelType != 2)
            throw new NextTokenException($"{path}: SentencePiece model type {modelType} ({(modelType == 1 ? "unigram" : "not BPE")}) is not supported (BPE, type 2, is); give a GGUF vocabulary with --vocab");
        if (removeExtraWhitespace || !escapeWhitespace)
            throw new NextTokenException($"{path}: the normalizer {(removeExtraWhitespace ? "removes extra whitespace" : "keeps spaces unescaped")}, which is not supported; give a GGUF vocabulary with --vocab");
        int? Known(int id) => id >= 0 && id < tokens.Count ? id : null; // -1 means "none"
        var vocabulary = new Vocabulary(tokens.ToArray(), types.ToArray(), Known(bosId), Known(eosId), addBos: Known(bosId) is not null, path, Known(unknownId));
        return new SentencePieceTokenizer(vocabulary, scores.ToArray(), addDummyPrefix);
    }

    /// <summary>A protobuf wire-format reader over data[start..end); errors name the file and byte offset.</summary>
    private struct Reader(string path, byte[] data, int start, int end)
    {
        private int _at = start;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_at >= end) return false;
            long key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            return true;
        }

        public long Varint()
        {
            long value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_at >= end) throw Error("a varint runs past the end of its message");
                byte b = data[_at++];
                value |= (long)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
            throw Error("a varint is longer than 10 bytes");
        }

        public float Fixed32Float()
        {
            if (_at + 4 > end) throw Error("a float runs past the end of its message");
            float value = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(_at, 4));
            _at += 4;
            return value;
        }

        public Reader Message()
        {
            int length = Length();
            var inner = new Reader(path, data, _at, _at + length);
            _at += length;
            return inner;
        }

        public string String()
        {
            int length = Length();
            string text = Encoding.UTF8.GetString(data, _at, length);
            _at += length;
            return text;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Advance(Length()); break;
                case 5: Advance(4); break;
                default: throw Error($"wire type {wire} is not a protobuf field type this reader knows");
            }
        }

        private int Length()
        {
            int at = _at;
            long length = Varint();
            if (length < 0 || length > end - _at) throw new NextTokenException($"{path}: offset {at}: a length of {length} runs past the end of its message");
            return (int)length;
        }

        private void Advance(int count)
        {
            if (count > end - _at) throw Error("a field runs past the end of its message");
            _at += count;
        }

        private readonly NextTokenException Error(string what) => new($"{path}: offset {_at}: {what}; not a SentencePiece model");
    }
}
