//! The built-in rule set: each rule's patterns, evidence, prefilter trigger and default action.

use super::config::Action;
use super::validate::Validator;

/// What must be seen in a string before a rule's regexes run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Any of these literals, ASCII case-insensitive.
    Literals(Vec<String>),
    /// A run of at least this many digits, single spaces, dashes or dots between them allowed.
    Digits(usize),
    /// This byte.
    Byte(u8),
    /// Always run (optional kinds and custom rules).
    Always,
}

/// One regex of a built-in rule, with the evidence it needs.
pub struct PatternSpec {
    pub regex: &'static str,
    /// Capture group replaced (0 = whole match).
    pub group: usize,
    pub validator: Validator,
    /// If not empty, one of these must occur near the match or in the enclosing key name.
    pub keywords: &'static [&'static str],
    /// If not empty, the regex cannot match a string holding none of these (case-sensitive).
    pub needs: &'static [&'static str],
}

/// A built-in rule.
pub struct BuiltinRule {
    pub name: &'static str,
    /// Off unless listed in `RedactConfig::optional`.
    pub optional: bool,
    pub action: Action,
    pub trigger: fn() -> Trigger,
    pub patterns: &'static [PatternSpec],
}

const fn strong(regex: &'static str, group: usize) -> PatternSpec {
    PatternSpec {
        regex,
        group,
        validator: Validator::None,
        keywords: &[],
        needs: &[],
    }
}

const fn checked(regex: &'static str, group: usize, validator: Validator) -> PatternSpec {
    PatternSpec {
        regex,
        group,
        validator,
        keywords: &[],
        needs: &[],
    }
}

/// A `checked` pattern that cannot match without one of `needs`.
const fn needing(
    regex: &'static str,
    validator: Validator,
    needs: &'static [&'static str],
) -> PatternSpec {
    PatternSpec {
        regex,
        group: 1,
        validator,
        keywords: &[],
        needs,
    }
}

fn lits(words: &[&str]) -> Trigger {
    Trigger::Literals(words.iter().map(|w| w.to_string()).collect())
}

const SSN_KEYWORDS: &[&str] = &[
    "ssn",
    "social security",
    "social_security",
    "socialsecurity",
];

/// Every built-in rule, in counter order.
pub static BUILTIN: &[BuiltinRule] = &[
    BuiltinRule {
        name: "pem_private_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["-----begin"]),
        patterns: &[strong(
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            0,
        )],
    },
    BuiltinRule {
        name: "jwt",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["eyj"]),
        // No word boundary before the header: a token glued to a word (`x_eyJ...`) is still a
        // token, and two `eyJ` segments joined by a dot are evidence enough on their own.
        patterns: &[strong(
            r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
            0,
        )],
    },
    BuiltinRule {
        name: "auth_header",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["bearer", "basic"]),
        patterns: &[
            checked(
                r"(?i)(?-u:\b)bearer\s+([A-Za-z0-9._~+/=-]{16,})",
                1,
                Validator::TokenShape,
            ),
            checked(
                r"(?i)(?-u:\b)basic\s+([A-Za-z0-9+/]{6,}={0,2})",
                1,
                Validator::BasicAuth,
            ),
        ],
    },
    BuiltinRule {
        name: "aws_access_key_id",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["akia", "asia"]),
        // A key may follow an underscore (`key_AKIA…`) and be followed by one.
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})(?:(?-u:\b)|_)",
            1,
        )],
    },
    BuiltinRule {
        name: "aws_secret_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["aws", "secret"]),
        patterns: &[PatternSpec {
            // An `=` may come before (`AWS_KEY=…`), not after: that would be a longer base64 text.
            regex: r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+=])",
            group: 1,
            validator: Validator::AwsSecret,
            keywords: &["aws", "secret"],
            needs: &[],
        }],
    },
    BuiltinRule {
        name: "github_token",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]),
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
            1,
        )],
    },
    BuiltinRule {
        name: "gitlab_token",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["glpat-", "gldt-", "glrt-"]),
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(gl(?:pat|dt|rt)-[A-Za-z0-9_-]{20,})",
            1,
        )],
    },
    BuiltinRule {
        name: "slack_token",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["xox", "xapp-", "hooks.slack.com"]),
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,})",
            1,
        )],
    },
    BuiltinRule {
        name: "stripe_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["k_live_", "k_test_", "whsec_"]),
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])([sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})",
            1,
        )],
    },
    BuiltinRule {
        name: "google_api_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["aiza", "ya29.", "gocspx-"]),
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{20,})",
            1,
        )],
    },
    BuiltinRule {
        name: "openai_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["sk-"]),
        // Project, service-account and admin keys name their kind; other `sk-` keys count when
        // they carry `T3BlbkFJ` (base64 of `OpenAI`) or have the legacy shape, 48 letters and
        // digits and nothing glued after, so `task-…` and short `sk-…` names stay.
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9_-]{10,}T3BlbkFJ[A-Za-z0-9_-]{10,}|[A-Za-z0-9]{48}(?-u:\b)))",
            1,
        )],
    },
    BuiltinRule {
        name: "anthropic_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["sk-ant-"]),
        // `sk-ant-` + kind and version (`api03-`, `admin01-`) + about 95 URL-safe characters.
        patterns: &[strong(r"(?:^|[^A-Za-z0-9])(sk-ant-[A-Za-z0-9_-]{40,})", 1)],
    },
    BuiltinRule {
        name: "huggingface_token",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["hf_"]),
        patterns: &[strong(r"(?:^|[^A-Za-z0-9])(hf_[A-Za-z]{34})(?-u:\b)", 1)],
    },
    BuiltinRule {
        name: "npm_token",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["npm_"]),
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(npm_[A-Za-z0-9]{36})(?-u:\b)",
            1,
        )],
    },
    BuiltinRule {
        name: "sendgrid_key",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["sg."]),
        // `SG.` + 22-character key id + `.` + 43-character secret, 69 characters in all.
        patterns: &[strong(
            r"(?:^|[^A-Za-z0-9])(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})",
            1,
        )],
    },
    BuiltinRule {
        name: "url_password",
        optional: false,
        action: Action::Mask,
        trigger: || lits(&["://"]),
        patterns: &[strong(
            // The user name may be empty (`redis://:password@host`).
            r#"(?i)[a-z][a-z0-9+.-]{1,20}://[^\s:/?#@"'<>]{0,128}:([^\s/?#@"'<>]{1,256})@"#,
            1,
        )],
    },
    BuiltinRule {
        name: "secret_param",
        optional: false,
        action: Action::Mask,
        // Stems: `key` covers api_key, access-key, privateKey…; `pass` covers passwd, passphrase;
        // `card` covers card_number and credit_card.
        trigger: || {
            lits(&[
                "pass",
                "pwd",
                "secret",
                "token",
                "key",
                "signature",
                "credential",
                // Key names the classifier knows (assignments in text) and `mysql -p…`.
                "cookie",
                "authorization",
                "cvv",
                "cvc",
                "ssn",
                "pan",
                "card",
                "ccnum",
                "cc_num",
                "cc-num",
                "cc.num",
                "mysql",
                "mariadb",
                // Clients whose short flag carries a password (`sshpass` holds `pass`).
                "curl",
                "redis-cli",
                // A signed URL's signature (`&sig=`, Azure shared access signatures).
                "sig=",
            ])
        },
        // Each form's separator is required, so prose that merely names a secret skips the regexes.
        patterns: &[
            needing(SECRET_PARAM, Validator::Unquote, &["=", ":"]),
            needing(SECRET_FLAG, Validator::Unquote, &["--"]),
            needing(MYSQL_P, Validator::Unquote, &["-p"]),
            needing(CURL_USER, Validator::PasswordHalf, &["-u"]),
            needing(SSHPASS_P, Validator::Unquote, &["-p"]),
            needing(REDIS_CLI_A, Validator::Unquote, &["-a", "--pass"]),
        ],
    },
    BuiltinRule {
        name: "email",
        optional: false,
        action: Action::Hash,
        trigger: || Trigger::Byte(b'@'),
        patterns: &[checked(
            r"(?i)(?-u:\b)[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9-]{1,63}\.)+[a-z]{2,24}(?-u:\b)",
            0,
            Validator::Email,
        )],
    },
    BuiltinRule {
        name: "credit_card",
        optional: false,
        action: Action::Mask,
        trigger: || Trigger::Digits(12),
        patterns: &[checked(
            r"(?-u:\b)[0-9]+(?:[ -][0-9]+)*(?-u:\b)",
            0,
            Validator::Card,
        )],
    },
    BuiltinRule {
        name: "ssn",
        optional: false,
        action: Action::Mask,
        trigger: || Trigger::Digits(9),
        patterns: &[
            // The separators are needed, so a bare number (`"duration_ns":260797874`) skips it.
            PatternSpec {
                regex: r"(?-u:\b)[0-9]{3}([- ])[0-9]{2}[- ][0-9]{4}(?-u:\b)",
                group: 0,
                validator: Validator::Ssn,
                keywords: &[],
                needs: &["-", " "],
            },
            PatternSpec {
                regex: r"(?-u:\b)[0-9]{9}(?-u:\b)",
                group: 0,
                validator: Validator::Ssn,
                keywords: SSN_KEYWORDS,
                needs: &[],
            },
        ],
    },
    BuiltinRule {
        name: "ipv4",
        optional: true,
        action: Action::Mask,
        trigger: || Trigger::Byte(b'.'),
        patterns: &[strong(
            r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
            0,
        )],
    },
    BuiltinRule {
        name: "ipv6",
        optional: true,
        action: Action::Mask,
        trigger: || Trigger::Byte(b':'),
        patterns: &[checked(
            r"(?i)[0-9a-f:]*:[0-9a-f:]*:[0-9a-f]*(?:[0-9]+\.[0-9.]+)?",
            0,
            Validator::Ipv6,
        )],
    },
    BuiltinRule {
        name: "phone",
        optional: true,
        action: Action::Mask,
        trigger: || Trigger::Digits(7),
        // Dotted groups also fit three groups of an IPv4 address: the validator turns down a
        // match that a dot and a digit continue.
        patterns: &[checked(
            r"(?:\+[1-9][0-9]{0,2}[ .-]?)?(?:\([0-9]{2,4}\)[ .-]?|(?-u:\b)[0-9]{2,4}[ .-])[0-9]{3,4}[ .-]?[0-9]{3,4}(?-u:\b)",
            0,
            Validator::Phone,
        )],
    },
];

/// The secret parameter and flag names of `secret_param`, as a regex alternation.
macro_rules! secret_names {
    () => {
        concat!(
            "password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|",
            "private[_-]?key|client[_-]?secret|signature|credentials?"
        )
    };
}

/// The alternation of `secret_names!`, which the `secret_param` gate reads its names from.
pub const SECRET_NAMES: &str = secret_names!();

/// A parameter value: quoted (all of it up to the closing quote) or bare.
macro_rules! param_value {
    ($bare_start:literal) => {
        concat!(
            r#"("(?:[^"\\\n]|\\.){1,256}"|'[^'\n]{1,256}'|"#,
            $bare_start,
            r#"[^\s"'&;,<>]*)"#
        )
    };
}

// Limitation: a bare value ends at whitespace, a quote or `&;,<>`; a password containing one of
// those keeps its tail (the head, which is all of most passwords, is replaced).
// Limitation: a URL whose user name is itself a secret word (`scheme://token:pw@host`) has
// `pw@host` taken by the `:` form, so its host is replaced too.
/// `secret_param`: a secret-named parameter (`?token=`, `Password="…"`, `password: …`,
/// `"secret": "…"`) and its value.
const SECRET_PARAM: &str = concat!(
    r#"(?i)(?:^|[^a-z0-9])(?:[a-z0-9]+[_.-])*(?:"#,
    secret_names!(),
    // After `:` only spaces or tabs: a `password:` label at a line end never takes the next line.
    r#")(?:\s*=\s*|:[ \t]*|"\s*:\s*)"#,
    param_value!(r#"[^\s"'&;,<>]"#)
);

/// `secret_param`: a command-line flag naming a secret (`--password x`, `--api-key=x`).
/// A value starting with `-` is the next flag, and `--password-file` names a file, not a secret.
const SECRET_FLAG: &str = concat!(
    r#"(?i)(?:^|[^a-z0-9-])--(?:[a-z0-9]+-)*(?:"#,
    secret_names!(),
    r#")(?:[ \t]+|=)"#,
    param_value!(r#"[^-\s"'&;,<>]"#)
);

/// `secret_param`: a password glued to `-p` on a MySQL or MariaDB client command line
/// (`mysql -uroot -pS3cret db`); `-p` alone prompts, and upper-case `-P` is the port.
const MYSQL_P: &str = concat!(
    r#"(?:^|[^A-Za-z0-9_-])(?i:mysql|mysqldump|mysqladmin|mysqlimport|mysqlcheck|mysqlshow|"#,
    r#"mariadb|mariadb-dump)(?:[ \t]+[^\s]+)*?[ \t]+-p([^-\s"'&;,<>][^\s"'&;,<>]*)"#
);

/// `secret_param`: the password half of the `user:password` after curl's `-u` or `--user`
/// (`curl -u bob:S3cret https://…`, `-ubob:S3cret`); `-u bob` alone prompts for it.
const CURL_USER: &str = concat!(
    r#"(?:^|[^A-Za-z0-9_-])(?i:curl)(?:[ \t]+[^\s]+)*?[ \t]+(?:-u[ \t]*|--user[ \t]+)"#,
    param_value!(r#"[^-\s"'&;,<>]"#)
);

/// `secret_param`: the password after sshpass's `-p` (`sshpass -p S3cret ssh host`, or glued).
/// Only sshpass's own flags may come between, so the wrapped command's `-p` (ssh's port) is
/// never read as one.
const SSHPASS_P: &str = concat!(
    r#"(?:^|[^A-Za-z0-9_-])(?i:sshpass)(?:[ \t]+-[^\s]+)*?[ \t]+-p[ \t]*"#,
    param_value!(r#"[^-\s"'&;,<>]"#)
);

/// `secret_param`: the password after redis-cli's `-a` or `--pass` (`redis-cli -h c -a S3cret`).
const REDIS_CLI_A: &str = concat!(
    r#"(?:^|[^A-Za-z0-9_-])(?i:redis-cli)(?:[ \t]+[^\s]+)*?[ \t]+(?:-a|--pass)[ \t]+"#,
    param_value!(r#"[^-\s"'&;,<>]"#)
);

/// The rule that also takes values assigned to secret key names in free text.
pub const ASSIGN_RULE: &str = "secret_param";

/// Names of the optional kinds.
pub const OPTIONAL: &[&str] = &["ipv4", "ipv6", "phone"];

/// Rule name of whole values redacted because of their key name.
pub const SECRET_KEY_RULE: &str = "secret_key";

/// Rule name of the password half of a `user:password` value under a user-name key.
pub const USER_PASSWORD_RULE: &str = "user_password";
