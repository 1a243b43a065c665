//! Tokenizers built from GGUF metadata (llama/SentencePiece and gpt2/byte-level BPE).
