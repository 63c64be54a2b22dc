namespace NextToken.SafeTensors;

/// <summary>
/// One row of a family's name table: the GGUF name (llama.cpp's, <c>{0}</c> the layer) and the
/// Hugging Face name of the same tensor. <see cref="Transposed"/> marks GPT-2's Conv1D weights,
/// stored [in][out]. The model families own these tables and hand them to
/// <see cref="HuggingFaceCheckpoint"/>, so this namespace needs nothing from the models.
/// </summary>
public readonly record struct TensorNameMapping(string Gguf, string HuggingFace, bool Transposed = false);
