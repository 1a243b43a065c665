// Reference detokenizer for pith's tokenizer golden files: prints llama.cpp's
// common_detokenize (llama_detokenize with remove_special = false) of each input line.
//
// Input (stdin): one token-id sequence per line, ids separated by spaces (a line may be
// empty). Output (stdout): one line per input line, "<hex(special=false)> <hex(special=true)>",
// where an empty text is written as "-". Built and run by make_golden.py.
#include "llama.h"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static std::string detok(const llama_vocab * vocab, const std::vector<llama_token> & ids, bool special) {
    std::string text(ids.size() * 8 + 16, '\0');
    int n = llama_detokenize(vocab, ids.data(), (int) ids.size(), &text[0], (int) text.size(), false, special);
    if (n < 0) {
        text.resize(-n);
        n = llama_detokenize(vocab, ids.data(), (int) ids.size(), &text[0], (int) text.size(), false, special);
    }
    text.resize(n);
    return text;
}

static std::string hex(const std::string & s) {
    if (s.empty()) {
        return "-";
    }
    static const char * digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

int main(int argc, char ** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s model.gguf < ids.txt\n", argv[0]);
        return 1;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "failed to load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::vector<llama_token> ids;
        std::istringstream ss(line);
        long v;
        while (ss >> v) {
            ids.push_back((llama_token) v);
        }
        printf("%s %s\n", hex(detok(vocab, ids, false)).c_str(), hex(detok(vocab, ids, true)).c_str());
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
