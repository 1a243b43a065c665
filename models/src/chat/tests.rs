//! Chat-template tests against llama.cpp's expectations.
//!
//! The cases below are copied verbatim from llama.cpp's `tests/test-chat-template.cpp`
//! (template, expected jinja output — `expected_output_jinja`, or `expected_output` where
//! that is empty — and the BOS/EOS text), rendered over the same conversation with
//! `add_generation_prompt = true`. Cases that need llama.cpp's system-role polyfill are
//! left out.

use super::*;
use std::collections::HashMap;

struct LlamaCase {
    name: &'static str,
    template: &'static str,
    expected: &'static str,
    bos: &'static str,
    eos: &'static str,
}

/// llama.cpp's test conversation.
fn conversation() -> Vec<ChatMessage> {
    [
        ("system", "You are a helpful assistant"),
        ("user", "Hello"),
        ("assistant", "Hi there"),
        ("user", "Who are you"),
        ("assistant", "   I am an assistant   "),
        ("user", "Another question"),
    ]
    .into_iter()
    .map(|(r, c)| ChatMessage::new(r, c))
    .collect()
}

const LLAMA_CPP_CASES: &[LlamaCase] = &[
    LlamaCase {
        name: "teknium/OpenHermes-2.5-Mistral-7B",
        template: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        expected: "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
        bos: "",
        eos: "",
    },
    LlamaCase {
        name: "mlabonne/AlphaMonarch-7B",
        template: "{% for message in messages %}{{bos_token + message['role'] + '\\n' + message['content'] + eos_token + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ bos_token + 'assistant\\n' }}{% endif %}",
        expected: "<s>system\nYou are a helpful assistant</s>\n<s>user\nHello</s>\n<s>assistant\nHi there</s>\n<s>user\nWho are you</s>\n<s>assistant\n   I am an assistant   </s>\n<s>user\nAnother question</s>\n<s>assistant\n",
        bos: "<s>",
        eos: "</s>",
    },
    LlamaCase {
        name: "deepseek-ai/deepseek-coder-33b-instruct",
        template: "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n{%- set ns = namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n        {%- set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, you will refuse to answer\\n'}}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n        {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}",
        expected: "You are a helpful assistant### Instruction:\nHello\n### Response:\nHi there\n<|EOT|>\n### Instruction:\nWho are you\n### Response:\n   I am an assistant   \n<|EOT|>\n### Instruction:\nAnother question\n### Response:\n",
        bos: "",
        eos: "",
    },
    LlamaCase {
        name: "eachadea/vicuna-13b-1.1",
        template: "{%- for message in messages %}{%- if message['role'] == 'system' -%}{{- '' + message['content'] + '\n\n' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + message['content'] + '\n'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}{{-'ASSISTANT:'-}}{%- endif -%}",
        expected: "You are a helpful assistant\n\nUSER: Hello\nASSISTANT: Hi there</s>\nUSER: Who are you\nASSISTANT:    I am an assistant   </s>\nUSER: Another question\nASSISTANT:",
        bos: "",
        eos: "",
    },
    LlamaCase {
        name: "CohereForAI/c4ai-command-r-plus",
        template: "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% elif false == true %}{% set loop_messages = messages %}{% set system_message = 'You are Command-R, a brilliant, sophisticated, AI-assistant trained to assist human users by providing thorough responses. You are trained by Cohere.' %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% if system_message != false %}{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + '<|END_OF_TURN_TOKEN|>' }}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% set content = message['content'] %}{% if message['role'] == 'user' %}{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% elif message['role'] == 'assistant' %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}",
        expected: "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi there<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Who are you<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I am an assistant<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Another question<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
        bos: "",
        eos: "",
    },
    LlamaCase {
        name: "Llama-3",
        template: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}",
        expected: "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        bos: "",
        eos: "",
    },
    LlamaCase {
        name: "ibm-granite/granite-3.0-8b-instruct",
        template: "{%- if tools %}\n    {{- '<|start_of_role|>available_tools<|end_of_role|>\n' }}\n    {%- for tool in tools %}\n    {{- tool | tojson(indent=4) }}\n    {%- if not loop.last %}\n        {{- '\n\n' }}\n    {%- endif %}\n    {%- endfor %}\n    {{- '<|end_of_text|>\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n    {{- '<|start_of_role|>system<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'user' %}\n    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'assistant' %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>'  + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'assistant_tool_call' %}\n    {{- '<|start_of_role|>assistant<|end_of_role|><|tool_call|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'tool_response' %}\n    {{- '<|start_of_role|>tool_response<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- endif %}\n    {%- if loop.last and add_generation_prompt %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n    {%- endif %}\n{%- endfor %}",
        expected: "<|start_of_role|>system<|end_of_role|>You are a helpful assistant<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Hello<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>Hi there<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Who are you<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>   I am an assistant   <|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Another question<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
        bos: "",
        eos: "",
    },
    LlamaCase {
        name: "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)",
        template: "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n",
        expected: " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an assistant   </s> [INST] Another question [/INST]",
        bos: "",
        eos: "</s>",
    },
];

#[test]
fn renders_llama_cpp_cases() {
    let conv = conversation();
    for case in LLAMA_CPP_CASES {
        let t = ChatTemplate::new(case.template, case.bos, case.eos)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let out = t
            .render(&conv, true)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(out, case.expected, "case {}", case.name);
    }
}

/// google/gemma-7b-it's template (llama.cpp's test case) refuses a system message with
/// `raise_exception`; the message reaches the error.
#[test]
fn raise_exception_reports_the_template_message() {
    let tmpl = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
    let t = ChatTemplate::new(tmpl, "<bos>", "<eos>").unwrap();
    let err = t.render(&conversation(), true).unwrap_err();
    assert!(matches!(err, ChatError::Render { .. }));
    assert!(
        err.to_string().contains("System role not supported"),
        "{err}"
    );
    // Without the system message it renders; the expected text is llama.cpp's for this
    // template with the system turn (merged into the first user turn there) left out.
    let out = t.render(&conversation()[1..], true).unwrap();
    assert_eq!(out, "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
}

#[test]
fn syntax_errors_are_reported() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }", "", "").unwrap_err();
    assert!(matches!(err, ChatError::Syntax { .. }), "{err}");
}

struct Meta(HashMap<&'static str, &'static str>);

impl Metadata for Meta {
    fn meta_int(&self, _: &str) -> Option<i64> {
        None
    }
    fn meta_float(&self, _: &str) -> Option<f64> {
        None
    }
    fn meta_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).copied()
    }
    fn meta_bool(&self, _: &str) -> Option<bool> {
        None
    }
    fn meta_int_array(&self, _: &str) -> Option<Vec<i64>> {
        None
    }
    fn meta_float_array(&self, _: &str) -> Option<Vec<f32>> {
        None
    }
    fn meta_array_len(&self, _: &str) -> Option<usize> {
        None
    }
}

/// The Gemma fallback gives what llama.cpp's built-in `gemma` format gives for its test
/// conversation (`expected_output` of the google/gemma-7b-it case: the system message
/// joined to the first user turn with a blank line).
#[test]
fn gemma_fallback_matches_llama_cpp_builtin_gemma_format() {
    let meta = Meta(HashMap::from([("general.architecture", "gemma3")]));
    let t = ChatTemplate::from_metadata(&meta, "<bos>", "<eos>").unwrap();
    assert_eq!(t.source(), TemplateSource::GemmaFallback);
    let out = t.render_prompt(&conversation(), true).unwrap();
    assert_eq!(out, "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
    // Without BOS handling by the tokenizer the template's own BOS stays.
    let with_bos = t.render_prompt(&conversation(), false).unwrap();
    assert_eq!(with_bos, format!("<bos>{out}"));
}

#[test]
fn plain_fallback_and_model_template_selection() {
    let meta = Meta(HashMap::from([("general.architecture", "llama")]));
    let t = ChatTemplate::from_metadata(&meta, "", "").unwrap();
    assert_eq!(t.source(), TemplateSource::PlainFallback);
    let msgs = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", " Hi "),
    ];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "system: Be brief.\nuser: Hi\nassistant:"
    );
    let meta = Meta(HashMap::from([
        ("general.architecture", "gemma3"),
        (
            CHAT_TEMPLATE_KEY,
            "{% for m in messages %}[{{ m.role }}]{% endfor %}",
        ),
    ]));
    let t = ChatTemplate::from_metadata(&meta, "", "").unwrap();
    assert_eq!(t.source(), TemplateSource::Model);
    assert_eq!(t.render(&msgs, true).unwrap(), "[system][user]");
    // A template that does not parse is an error from `from_metadata`; `fallback`
    // ignores it.
    let meta = Meta(HashMap::from([
        ("general.architecture", "gemma3"),
        (CHAT_TEMPLATE_KEY, "{% for m in messages %}"),
    ]));
    assert!(matches!(
        ChatTemplate::from_metadata(&meta, "", ""),
        Err(ChatError::Syntax { .. })
    ));
    let t = ChatTemplate::fallback(&meta, "", "").unwrap();
    assert_eq!(t.source(), TemplateSource::GemmaFallback);
}

/// `strftime_now` formats as Python's `time.strftime` over `time.gmtime`.
#[test]
fn strftime_matches_python() {
    let fmt = "%d %b %Y|%Y-%m-%d %H:%M:%S|%A %a %B %j %y %p %e %%";
    let times = [
        0i64,
        951_782_400,
        1_709_164_800,
        1_721_952_000,
        4_102_444_799,
    ];
    for &t in &times {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,time; print(time.strftime(sys.argv[1], time.gmtime(int(sys.argv[2]))), end='')",
                fmt,
                &t.to_string(),
            ])
            .output()
            .expect("python3 is needed for this test");
        assert!(out.status.success());
        assert_eq!(
            strftime_utc(fmt, t),
            String::from_utf8(out.stdout).unwrap(),
            "t={t}"
        );
    }
    // And the template function is wired.
    let t = ChatTemplate::new("{{ strftime_now('%Y') }}", "", "").unwrap();
    let year = t.render(&[], false).unwrap();
    assert_eq!(year.len(), 4);
    assert!(year.starts_with('2'));
}
