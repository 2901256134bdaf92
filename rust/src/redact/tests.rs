//! Unit tests per rule kind, key rules, actions and the `fields` walker.

use super::*;

fn redactor() -> Redactor {
    Redactor::new(RedactConfig::default()).unwrap()
}

fn keyed() -> Redactor {
    let config = RedactConfig {
        hash_key: Some("test-key".into()),
        hash_key_id: "k1".into(),
        pseudonymize: vec!["user_id".into()],
        ..RedactConfig::default()
    };
    Redactor::new(config).unwrap()
}

/// The built-in rules with these optional ones turned on.
fn with_optional(names: &[&str]) -> Redactor {
    let config = RedactConfig {
        optional: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    Redactor::new(config).unwrap()
}

fn red(text: &str) -> String {
    let r = redactor();
    let mut counts = vec![0; r.rule_names().len()];
    r.redact_text(text, &mut counts).into_owned()
}

fn field(r: &Redactor, key: &str, raw: &str) -> String {
    let mut out = String::from("{");
    let mut counts = vec![0; r.rule_names().len()];
    r.write_field(key, raw, &mut out, &mut counts);
    out.push('}');
    out
}

fn count_of(r: &Redactor, counts: &[u64], rule: &str) -> u64 {
    counts[r.rule_names().iter().position(|n| n == rule).unwrap()]
}

#[test]
fn card_grouped_bare_and_dashed_are_replaced_in_place() {
    assert_eq!(
        red("charge card 4111 1111 1111 1111 failed"),
        "charge card [REDACTED:credit_card] failed"
    );
    assert_eq!(red("pan=4111111111111111;"), "pan=[REDACTED:credit_card];");
    assert_eq!(
        red("mc 5555-5555-5555-4444 ok"),
        "mc [REDACTED:credit_card] ok"
    );
    assert_eq!(red("mc2 2223003122003222"), "mc2 [REDACTED:credit_card]");
    assert_eq!(red("amex 378282246310005."), "amex [REDACTED:credit_card].");
}

#[test]
fn card_followed_by_more_digits_is_still_found() {
    assert_eq!(red("4111 1111 1111 1111 123"), "[REDACTED:credit_card] 123");
    assert_eq!(
        red("1701234567890 4111111111111111"),
        "1701234567890 [REDACTED:credit_card]"
    );
}

#[test]
fn card_lookalikes_stay() {
    for clean in [
        "order 4111111111111112 failed luhn",
        "ts=1701234567890 epoch ms",
        "ts=1701234567890123 epoch us",
        "id 12345678-1234-1234-1234-123456789012",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "value 3.4111111111111111",
        "blk_-1608999687919862906 served",
        "run of 12345678901234567890123 digits",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn ssn_in_valid_ranges_only() {
    assert_eq!(red("ssn 123-45-6789 on file"), "ssn [REDACTED:ssn] on file");
    assert_eq!(red("SSN: 123456789"), "SSN: [REDACTED:ssn]");
    for clean in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "id 123456789",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn email_is_hashed_with_a_key_and_masked_without() {
    assert_eq!(red("mail bob@example.com now"), "mail [REDACTED:email] now");
    let r = keyed();
    let mut counts = vec![0; r.rule_names().len()];
    let out = r
        .redact_text("mail Bob@Example.com", &mut counts)
        .into_owned();
    let again = r
        .redact_text("mail bob@example.com", &mut counts)
        .into_owned();
    assert!(
        out.starts_with("mail [HASH:email:k1:") && out.len() == "mail [HASH:email:k1:]".len() + 16
    );
    assert_eq!(out, again);
    assert_eq!(count_of(&r, &counts, "email"), 2);
    assert!(redactor().hash_fallback());
    assert!(!r.hash_fallback());
}

#[test]
fn tokens_with_documented_prefixes() {
    let cases = [
        ("AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_token"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_token"),
        ("glpat-abcdefghij0123456789", "gitlab_token"),
        ("xoxb-123456789012-abcdefghijkl", "slack_token"),
        ("sk_live_abcdefghijklmnop1234", "stripe_key"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "google_api_key"),
        ("sk-proj-nFIGLj5M7YYpHCOTHUtuJvbipRdkJAWZ4moUxm_yI5B_KGnplJJpdu0ol29v", "openai_key"),
        ("sk-svcacct-X6N_631mG8YE5_is_I4cZ2cSV8HTMyf8GmXmeyNdaKTGoeszaD", "openai_key"),
        ("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", "openai_key"),
        ("sk-F68NcpP7BEXvfqZgimdS7jnqFCiI5ydYgqTxIBAiCofjZUlj", "openai_key"),
        ("sk-ant-api03-cCTf07I8PjUhmi2ogviaNfrWta57-cLkIFKaEaTopYW5LSQdGrKNB4di4RX2G1zdW8FXpCEyGjFl6gdyK26CijxV6zXnUAA", "anthropic_key"),
        ("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", "huggingface_token"),
        ("npm_iZbnGXei4Lo53t2zLE0MZwlwp23JOwv0HBha", "npm_token"),
        ("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", "sendgrid_key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
    ];
    for (secret, rule) in cases {
        assert_eq!(
            red(&format!("got {secret} here")),
            format!("got [REDACTED:{rule}] here")
        );
        // Glued into an identifier after an underscore, and two in a row.
        assert_eq!(
            red(&format!("deploy_{secret} x")),
            format!("deploy_[REDACTED:{rule}] x"),
            "{secret}"
        );
        assert_eq!(
            red(&format!("{secret},{secret}")),
            format!("[REDACTED:{rule}],[REDACTED:{rule}]")
        );
    }
    assert_eq!(
        red("key_AKIAIOSFODNN7EXAMPLE_prod"),
        "key_[REDACTED:aws_access_key_id]_prod"
    );
    // Inside a word of letters the prefixes are left alone.
    for clean in [
        "BRAKIAIOSFODNN7EXAMPLE",
        "xghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn ai_and_registry_token_lookalikes_stay() {
    for clean in [
        // `sk-` ends words and starts short names; a legacy-length run needs no glued tail.
        "task-proj-migration-for-the-new-billing-service-and-more",
        "deploy task-F68NcpP7BEXvfqZgimdS7jnqFCiI5ydYgqTxIBAiCofjZUlj",
        "sk-proj-alpha is the staging project",
        "sk-F68NcpP7BEXvfqZgimdS7jnqFCiI5ydYgqTxIBAiCofjZUlj9",
        "risk-ant-api03-cCTf07I8PjUhmi2ogviaNfrWta57-cLkIFKaEaTopYW5LSQd",
        "sk-ant-api03-short",
        // `hf_` and `npm_` inside identifiers, or followed by too few or too many characters.
        "half_EnWRwvFItdlNODirEtIdjdHbRtFxOsxQVl",
        "pdhf_EnWRwvFItdlNODirEtIdjdHbRtFxOsxQVl",
        "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2",
        "hf_hub_download(repo_id, filename)",
        "run npm_config_cache=/tmp/npm before npm_install_all_the_packages_now",
        "npm_iZbnGXei4Lo53t2zLE0MZwlwp23JOwv0HBha9",
        // `SG.` that is a sentence end or a key of the wrong shape.
        "msg.SG.fNIvMzzoCXK4oXo4jEhAWy is a setting",
        "SG.fNIvMzzoCXK4oXo4jEhA.kqU9pklDCnr88OXiUpRIv69mTf5ObhWzFnTvJ2gwi2R",
        "region SG. capacity",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn authorization_values() {
    assert_eq!(
        red("Authorization: Bearer abcDEF123456ghiJKL789"),
        "Authorization: Bearer [REDACTED:auth_header]"
    );
    assert_eq!(
        red("auth Basic dXNlcjpwYXNzd29yZA=="),
        "auth Basic [REDACTED:auth_header]"
    );
    assert_eq!(
        red("Basic authentication failed"),
        "Basic authentication failed"
    );
    assert_eq!(red("bearer token expired"), "bearer token expired");
}

#[test]
fn pem_private_key_block_spans_lines() {
    let text =
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\ndone";
    assert_eq!(red(text), "key:\n[REDACTED:pem_private_key]\ndone");
    assert_eq!(
        red("-----BEGIN PRIVATE KEY-----\nMIIE truncated"),
        "[REDACTED:pem_private_key]"
    );
}

#[test]
fn urls_query_params_and_connection_strings() {
    assert_eq!(
        red("db postgres://app:s3cr3t@db:5432/x"),
        "db postgres://app:[REDACTED:url_password]@db:5432/x"
    );
    assert_eq!(
        red("GET /cb?code=1&access_token=abc123&state=x"),
        "GET /cb?code=1&access_token=[REDACTED:secret_param]&state=x"
    );
    assert_eq!(
        red("Server=db;User Id=sa;Password=Pa55w0rd;"),
        "Server=db;User Id=sa;Password=[REDACTED:secret_param];"
    );
    // A token by any other name: pagination cursors are redacted with the rest.
    assert_eq!(
        red("GET /list?nextToken=abc"),
        "GET /list?nextToken=[REDACTED:secret_param]"
    );
}

#[test]
fn aws_secret_key_needs_a_keyword() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    assert_eq!(
        red(&format!("aws secret {secret}")),
        "aws secret [REDACTED:aws_secret_key]"
    );
    let plain = format!("blob {secret} stored");
    assert_eq!(red(&plain), plain);
    for name in ["AWS_KEY", "aws_key", "AWS", "awskey"] {
        assert_eq!(
            red(&format!("{name}={secret}")),
            format!("{name}=[REDACTED:aws_secret_key]")
        );
    }
    // A longer base64 text that happens to hold 40 characters after an `=` is not a key.
    let longer = format!("aws blob=={secret}QQ==");
    assert_eq!(red(&longer), longer);
}

#[test]
fn words_that_only_mention_secrets_stay() {
    for clean in [
        "password reset email sent",
        "token bucket refilled",
        "secret santa list",
        "Failed password for root from 10.0.0.1 port 22 ssh2",
        "api key rotation scheduled",
        "Accepted publickey for admin",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn escaped_and_url_encoded_secrets_are_caught() {
    assert_eq!(
        red(r"card \u0034111 1111 1111 1111 end"),
        "card [REDACTED:credit_card] end"
    );
    assert_eq!(red("to=bob%40example.com&x=1"), "to=[REDACTED:email]&x=1");
}

#[test]
fn a_jwt_glued_to_a_word_is_still_caught() {
    // Breaker report s5: `x_eyJ...` passed, the leading `_` leaving no word boundary.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N";
    assert_eq!(red(&format!("sid=x_{jwt} ok")), "sid=x_[REDACTED:jwt] ok");
    assert_eq!(red(&format!("token{jwt}")), "token[REDACTED:jwt]");
}

#[test]
fn overlapping_matches_are_merged_once() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N";
    assert_eq!(
        red(&format!("Authorization: Bearer {jwt}")),
        "Authorization: Bearer [REDACTED:jwt]"
    );
    assert_eq!(
        red("x token=4111111111111111 y"),
        "x token=[REDACTED:credit_card] y"
    );
    let out = red("https://bob%40example.com:pw@host/");
    assert!(!out.contains("pw@") && !out.contains("bob"), "{out}");
}

#[test]
fn phone_numbers_grouped_by_dots_wake_the_phone_rule() {
    let r = with_optional(&["phone"]);
    let out = r.redact_text(
        "call 415.555.0100 or (415) 555.0100; ref a123-45-6789.4111",
        &mut [],
    );
    assert_eq!(
        out,
        "call [REDACTED:phone] or [REDACTED:phone]; ref a123-[REDACTED:phone]"
    );
    // Dotted digit groups of an address or a version are no phone number, whole or in part.
    for clean in [
        "from 10.203.219.244 ok",
        "v2.415.555.0100",
        "at 192.168.100.1.",
    ] {
        assert_eq!(r.redact_text(clean, &mut []), clean);
    }
    assert_eq!(
        r.redact_text("call 415.555.0100.", &mut []),
        "call [REDACTED:phone]."
    );
}

#[test]
fn optional_rules_are_off_by_default_and_opt_in() {
    assert_eq!(
        red("from 10.1.2.3 call +1 415-555-0100"),
        "from 10.1.2.3 call +1 415-555-0100"
    );
    let r = with_optional(&["ipv4", "ipv6", "phone"]);
    let out = r.redact_text(
        "from 10.1.2.3 and fe80::1ff:fe23:4567:890a call (415) 555-0100",
        &mut [],
    );
    assert_eq!(
        out,
        "from [REDACTED:ipv4] and [REDACTED:ipv6] call [REDACTED:phone]"
    );
}

#[test]
fn secret_key_names_across_spellings() {
    let r = redactor();
    for key in [
        "api_key",
        "apiKey",
        "API-KEY",
        "x-api-key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "authorization",
        "cookie",
        "set-cookie",
        "card_number",
        "cvv",
        "ssn",
        "private_key",
        "db_password",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(r.is_secret_key(key), "{key}");
    }
    for key in [
        "user",
        "tokens_used",
        "password_reset",
        "bigtoken",
        "OLDPWD",
        "signature_algorithm",
        "keyboard",
        "message",
    ] {
        assert!(!r.is_secret_key(key), "{key}");
    }
}

#[test]
fn keys_whose_last_word_names_a_secret_are_secret() {
    let r = redactor();
    for key in [
        "api_token",
        "X-Amz-Security-Token",
        "PRIVATE-TOKEN",
        "bot_token",
        "bearer_token",
        "X-Vault-Token",
        "csrf_token",
        "x-api-token",
        "githubToken",
        "oauth2Token",
        "credential",
        "db_credentials",
        "x-amz-signature",
        "ssh.passphrase",
        "db_pwd",
        "aws_access_key",
    ] {
        assert!(r.is_secret_key(key), "{key}");
        let mut out = String::new();
        assert!(r.write_field(key, r#""Tok_77abc""#, &mut out, &mut []));
        assert_eq!(out, format!(r#""{key}":"[REDACTED:secret_key]""#), "{key}");
        assert_eq!(
            red(&format!("{key}=Tok_77abc ok")),
            format!("{key}=[REDACTED:secret_param] ok"),
            "{key}"
        );
    }
}

#[test]
fn name_value_pairs_named_as_secrets_lose_their_value() {
    let r = redactor();
    let env = r#"[{"name":"DB_PASSWORD","value":"TokD_123456"},{"name":"HOME","value":"/root"}]"#;
    assert_eq!(
        field(&r, "env", env),
        r#"{"env":[{"name":"DB_PASSWORD","value":"[REDACTED:secret_key]"},{"name":"HOME","value":"/root"}]}"#
    );
    // OpenTelemetry's JSON attributes, the value an object; the pair may come in any order.
    let attrs = r#"[{"value":{"stringValue":"hunter2xyz"},"key":"password"}]"#;
    assert_eq!(
        field(&r, "attributes", attrs),
        r#"{"attributes":[{"value":"[REDACTED:secret_key]","key":"password"}]}"#
    );
    // A whole event shaped as a pair.
    let mut out = String::new();
    let members = [("name", r#""api_token""#), ("value", r#""TokE_123456""#)];
    assert_eq!(r.write_fields(&members, &mut out, &mut []), 2);
    assert_eq!(out, r#""name":"api_token","value":"[REDACTED:secret_key]""#);
    // Names in any case, AWS tags (`Key`/`Value`) and CloudFormation parameters.
    for (pair, secret) in [
        (
            r#"{"Name":"DB_PASSWORD","Value":"TokD_123456"}"#,
            "TokD_123456",
        ),
        (
            r#"{"Key":"api_token","Value":"TokF_123456"}"#,
            "TokF_123456",
        ),
        (
            r#"{"ParameterKey":"DbPassword","ParameterValue":"TokG_123456"}"#,
            "TokG_123456",
        ),
        (
            r#"{"NAME":"secret","VALUE":{"nested":"TokH_123456"}}"#,
            "TokH_123456",
        ),
    ] {
        let out = field(&r, "k", &format!("[{pair}]"));
        assert!(!out.contains(secret), "{out}");
        assert!(out.contains("[REDACTED:secret_key]"), "{out}");
    }
    let mut out = String::new();
    let members = [("Name", r#""DB_PASSWORD""#), ("Value", r#""TokI_123456""#)];
    assert_eq!(r.write_fields(&members, &mut out, &mut []), 2);
    assert_eq!(
        out,
        r#""Name":"DB_PASSWORD","Value":"[REDACTED:secret_key]""#
    );
    // Plain names, and objects that are more than a pair, stay as they are.
    for clean in [
        r#"{"Name":"Region","Value":"eu-west-1"}"#,
        r#"{"ParameterKey":"InstanceType","ParameterValue":"t3.micro"}"#,
        r#"{"name":"HOME","value":"/root"}"#,
        r#"{"name":"password_reset","value":"sent"}"#,
        r#"{"name":"x","meta":{"name":"password"},"value":"v"}"#,
        r#"{"name":"token","valueFrom":{"secretKeyRef":{"name":"db"}}}"#,
    ] {
        assert_eq!(field(&r, "k", clean), format!(r#"{{"k":{clean}}}"#));
    }
    let mut out = String::new();
    let members = [("name", r#""HOME""#), ("value", r#""/root""#)];
    r.write_fields(&members, &mut out, &mut []);
    assert_eq!(out, r#""name":"HOME","value":"/root""#);
}

#[test]
fn the_value_after_a_flag_naming_a_secret_is_the_secret() {
    let r = redactor();
    for (args, want) in [
        (
            r#"["mysql","--password","hunter2xyz","-h","db"]"#,
            r#"["mysql","--password","[REDACTED:secret_key]","-h","db"]"#,
        ),
        (
            r#"["tool", "-api-key", "abcdef123456", "--verbose"]"#,
            r#"["tool","-api-key","[REDACTED:secret_key]","--verbose"]"#,
        ),
        (
            r#"["app","--password",1234]"#,
            r#"["app","--password","[REDACTED:secret_key]"]"#,
        ),
        // Flags that name no secret, a flag with its own value, and a flag last.
        (
            r#"["ls","-l","--color","auto"]"#,
            r#"["ls","-l","--color","auto"]"#,
        ),
        (r#"["app","--token"]"#, r#"["app","--token"]"#),
        (r#"["-","password","x"]"#, r#"["-","password","x"]"#),
    ] {
        assert_eq!(
            field(&r, "args", args),
            format!(r#"{{"args":{want}}}"#),
            "{args}"
        );
    }
    // As an OpenTelemetry attribute, and nested in an object.
    let nested = r#"{"process":{"command_args":["db","--db-password","s3cr3tpw"]}}"#;
    assert!(!field(&r, "resource", nested).contains("s3cr3tpw"));
}

#[test]
fn a_clients_password_flag_in_an_argument_array_hides_the_next_value() {
    let r = redactor();
    for (args, want) in [
        (
            r#"["curl","-u","admin:Hunter2pw","https://x"]"#,
            r#"["curl","-u","admin:[REDACTED:user_password]","https://x"]"#,
        ),
        (
            r#"["/usr/bin/curl","-s","--user","admin:Hunter2pw"]"#,
            r#"["/usr/bin/curl","-s","--user","admin:[REDACTED:user_password]"]"#,
        ),
        (
            r#"["curl","-uadmin:Hunter2pw"]"#,
            r#"["curl","-uadmin:[REDACTED:user_password]"]"#,
        ),
        (
            r#"["sshpass","-p","Hunter2pw","ssh","-p","2222","host"]"#,
            r#"["sshpass","-p","[REDACTED:secret_key]","ssh","-p","2222","host"]"#,
        ),
        (
            r#"["sshpass","-pHunter2pw","ssh","host"]"#,
            r#"["sshpass","-p[REDACTED:secret_key]","ssh","host"]"#,
        ),
        (
            r#"["redis-cli","-h","cache","-a","Hunter2pw","ping"]"#,
            r#"["redis-cli","-h","cache","-a","[REDACTED:secret_key]","ping"]"#,
        ),
        (
            r#"["mysql","-uroot","-pHunter2pw","db"]"#,
            r#"["mysql","-uroot","-p[REDACTED:secret_key]","db"]"#,
        ),
    ] {
        assert_eq!(
            field(&r, "args", args),
            format!(r#"{{"args":{want}}}"#),
            "{args}"
        );
        // Replacements already there are left alone.
        assert_eq!(
            field(&r, "args", want),
            format!(r#"{{"args":{want}}}"#),
            "{want}"
        );
    }
    // No password after the flag, a flag of another program, or no client named before it.
    for clean in [
        r#"["curl","-u","admin","https://x"]"#,
        r#"["sshpass","-f","/run/pw","ssh","-p","2222","host"]"#,
        r#"["docker","run","-u","1000:1000","img"]"#,
        r#"["ssh","-p","2222","host"]"#,
        r#"["mysql","-p","db"]"#,
        r#"["redis-cli","info","-a"]"#,
    ] {
        assert_eq!(field(&r, "args", clean), format!(r#"{{"args":{clean}}}"#));
    }
}

#[test]
fn card_and_ssn_key_names_agree_in_text_and_json() {
    let r = redactor();
    for (name, spelled) in [
        ("ssn", "ssn"),
        ("pan", "PAN"),
        ("card_number", "cardNumber"),
        ("cc_number", "CcNumber"),
        ("credit_card", "credit-card"),
    ] {
        for key in [name, spelled] {
            assert_eq!(
                red(&format!("{key}=x1 ok")),
                format!("{key}=[REDACTED:secret_param] ok")
            );
            assert_eq!(
                field(&r, key, "\"x1\""),
                format!("{{\"{key}\":\"[REDACTED:secret_key]\"}}")
            );
        }
    }
    assert_eq!(red("ssn: x1"), "ssn: [REDACTED:secret_param]");
    // Prose that contains the stems stays.
    for text in [
        "span=5 company card game ssn lookup",
        "expand panel: open",
        "pan card",
    ] {
        assert_eq!(red(text), text);
    }
}

#[test]
fn a_value_rule_is_credited_over_secret_param_for_the_same_span() {
    let r = redactor();
    let mut counts = vec![0; r.rule_names().len()];
    let out = r.redact_text("ssn=123-45-6789 pan=4111111111111111", &mut counts);
    assert_eq!(out, "ssn=[REDACTED:ssn] pan=[REDACTED:credit_card]");
    assert_eq!(count_of(&r, &counts, "ssn"), 1);
    assert_eq!(count_of(&r, &counts, "credit_card"), 1);
    assert_eq!(count_of(&r, &counts, "secret_param"), 0);
    let out = r.redact_text(r#"{"ssn": "123-45-6789"} cc_number=x1"#, &mut counts);
    assert_eq!(
        out,
        r#"{"ssn": "[REDACTED:ssn]"} cc_number=[REDACTED:secret_param]"#
    );
    assert_eq!(count_of(&r, &counts, "ssn"), 2);
    assert_eq!(count_of(&r, &counts, "secret_param"), 1);
}

#[test]
fn write_field_copies_clean_values_exactly() {
    let r = redactor();
    let raw = r#"{"a": [1, 2.50, 123456789012345678901234567890], "b": "x\ty"}"#;
    assert_eq!(field(&r, "data", raw), format!(r#"{{"data":{raw}}}"#));
    let escaped = r#""caf\u00e9 \"quoted\"""#;
    assert_eq!(
        field(&r, "note", escaped),
        format!(r#"{{"note":{escaped}}}"#)
    );
}

#[test]
fn write_field_redacts_at_any_depth() {
    let r = redactor();
    let raw = r#"{"headers":{"Authorization":"Bearer x","X-Trace":"ok"},"list":[{"token":"t1"},"card 4111111111111111"],"n":12345678901234567890123}"#;
    let want = r#"{"f":{"headers":{"Authorization":"[REDACTED:secret_key]","X-Trace":"ok"},"list":[{"token":"[REDACTED:secret_key]"},"card [REDACTED:credit_card]"],"n":12345678901234567890123}}"#;
    assert_eq!(field(&r, "f", raw), want);
}

#[test]
fn write_field_handles_numbers_keys_and_embedded_json() {
    let r = redactor();
    assert_eq!(
        field(&r, "n", "4111111111111111"),
        r#"{"n":"[REDACTED:credit_card]"}"#
    );
    assert_eq!(
        field(&r, "password", "42"),
        r#"{"password":"[REDACTED:secret_key]"}"#
    );
    assert_eq!(
        field(&r, "bob@example.com", "1"),
        r#"{"[REDACTED:email]":1}"#
    );
    let embedded = r#""{\"user\":\"bob\",\"password\":\"hunter2\"}""#;
    assert_eq!(
        field(&r, "body", embedded),
        r#"{"body":"{\"user\":\"bob\",\"password\":\"[REDACTED:secret_key]\"}"}"#
    );
    let dup = r#"{"password":"a","password":"b"}"#;
    assert_eq!(
        field(&r, "d", dup),
        r#"{"d":{"password":"[REDACTED:secret_key]","password":"[REDACTED:secret_key]"}}"#
    );
}

#[test]
fn user_password_pairs_under_user_keys() {
    let r = redactor();
    assert_eq!(
        field(&r, "username", r#""gjoe:1MiracleWalker""#),
        r#"{"username":"gjoe:[REDACTED:user_password]"}"#
    );
    assert_eq!(field(&r, "username", r#""gjoe""#), r#"{"username":"gjoe"}"#);
    assert_eq!(
        field(&r, "x", r#"{"user":"a:b"}"#),
        r#"{"x":{"user":"a:[REDACTED:user_password]"}}"#
    );
}

#[test]
fn actions_drop_partial_hash() {
    let mut actions = std::collections::HashMap::new();
    actions.insert("credit_card".to_string(), "partial".to_string());
    actions.insert("secret_key".to_string(), "drop".to_string());
    actions.insert("ssn".to_string(), "drop".to_string());
    let config = RedactConfig {
        actions,
        ..Default::default()
    };
    let r = Redactor::new(config).unwrap();
    assert_eq!(
        r.redact_text("card 4111 1111 1111 1111", &mut []),
        "card [REDACTED:credit_card:1111]"
    );
    let mut out = String::from("{");
    assert!(!r.write_field("password", r#""x""#, &mut out, &mut []));
    assert_eq!(out, "{");
    assert_eq!(
        field(&r, "o", r#"{"a":1,"token":"x","b":["123-45-6789",2]}"#),
        r#"{"o":{"a":1,"b":[2]}}"#
    );
}

#[test]
fn write_field_adds_commas_between_members() {
    let r = redactor();
    let mut out = String::from("{");
    r.write_field("a", "1", &mut out, &mut []);
    r.write_field("token", "\"t\"", &mut out, &mut []);
    r.write_field("b", "{\"c\":\"d\"}", &mut out, &mut []);
    out.push('}');
    assert_eq!(
        out,
        r#"{"a":1,"token":"[REDACTED:secret_key]","b":{"c":"d"}}"#
    );
}

#[test]
fn custom_rules_and_config_errors() {
    let json = r#"{"rules":[{"name":"order_ref","pattern":"ORD-[0-9]{6}","action":"hash"}],"hash_key":"k","hash_key_id":"k9"}"#;
    let r = Redactor::from_json(json).unwrap();
    let out = r.redact_text("ref ORD-123456", &mut []);
    assert!(out.starts_with("ref [HASH:order_ref:k9:"), "{out}");
    let bad =
        Redactor::from_json(r#"{"rules":[{"name":"broken","pattern":"(unclosed"}]}"#).unwrap_err();
    assert!(bad.to_string().contains("\"broken\""), "{bad}");
    let huge = Redactor::from_json(
        r#"{"rules":[{"name":"huge","pattern":"\\w{1000}\\w{1000}\\w{1000}"}]}"#,
    );
    assert!(huge.unwrap_err().to_string().contains("\"huge\""));
    assert!(Redactor::from_json(r#"{"actions":{"emial":"hash"}}"#).is_err());
    assert!(Redactor::from_json(r#"{"pseudonymize":["user_id"]}"#).is_err());
}

#[test]
fn custom_rule_with_keywords_and_validator() {
    let json = r#"{"builtin":false,"rules":[{"name":"acct","pattern":"[0-9]{8}","keywords":["account"]},{"name":"lcard","pattern":"[0-9]{16}","validator":"luhn"}]}"#;
    let r = Redactor::from_json(json).unwrap();
    assert_eq!(
        r.redact_text("account 12345678", &mut []),
        "account [REDACTED:acct]"
    );
    assert_eq!(r.redact_text("order 12345678", &mut []), "order 12345678");
    assert_eq!(
        r.redact_text("x 4111111111111111 y 4111111111111112", &mut []),
        "x [REDACTED:lcard] y 4111111111111112"
    );
}

#[test]
fn pseudonyms_are_keyed_stable_and_idempotent() {
    let r = keyed();
    let a = r.pseudonymize("user_id", "alice").unwrap();
    assert_eq!(a, r.pseudonymize("user_id", "alice").unwrap());
    assert_ne!(a, r.pseudonymize("user_id", "bob").unwrap());
    assert!(a.starts_with("[HASH:user_id:k1:"));
    assert_eq!(r.pseudonymize("user_id", &a).unwrap(), a);
    assert_eq!(r.pseudonymize("session_id", "s"), None);
}

#[test]
fn dead_letters_keep_invalid_bytes_and_lose_secrets() {
    let r = redactor();
    let raw = b"\xff\xfe broken token=abc123 \xc3";
    assert_eq!(
        &*r.redact_bytes(raw, &mut []),
        b"\xff\xfe broken token=[REDACTED:secret_param] \xc3"
    );
    let json = br#"{"message":"x","password":"p","n":1"#;
    // Truncated JSON: the key rule still applies, as in a well-formed document.
    let want = br#"{"message":"x","password":"[REDACTED:secret_key]","n":1"#;
    assert_eq!(&*r.redact_bytes(json, &mut []), want);
    let clean = b"not json at all";
    assert!(matches!(r.redact_bytes(clean, &mut []), Cow::Borrowed(_)));
}

#[test]
fn counters_follow_rule_names() {
    let r = redactor();
    let mut counts = vec![0; r.rule_names().len()];
    r.redact_text(
        "a 4111111111111111 b 5555555555554444 c 123-45-6789",
        &mut counts,
    );
    assert_eq!(count_of(&r, &counts, "credit_card"), 2);
    assert_eq!(count_of(&r, &counts, "ssn"), 1);
    let mut out = String::new();
    r.write_field("password", "\"x\"", &mut out, &mut counts);
    assert_eq!(count_of(&r, &counts, "secret_key"), 1);
}

#[test]
fn digit_run_ignores_groups_glued_to_letters() {
    use super::prefilter::longest_digit_run;
    assert_eq!(longest_digit_run(b"dde695442c3181831697bc905cb9e240", 9), 0);
    assert_eq!(longest_digit_run(b"id 3181831697 ok", 9), 10);
    assert_eq!(longest_digit_run(b"4111 1111 1111 1111 5x", 9), 16);
    assert_eq!(longest_digit_run(b"x4111 1111 1111 1111", 9), 12);
    assert_eq!(
        red("pay 4111 1111 1111 1111 5x"),
        "pay [REDACTED:credit_card] 5x"
    );
}

#[test]
fn digit_run_probe_matches_a_full_scan() {
    use super::prefilter::longest_digit_run;
    for text in [
        "4111 1111 1111 1111",
        "ab 123-45-6789 cd",
        "2018-03-24 17:15",
        "x1 2 3",
        "12  34",
        "--9999999999",
        "dde695442c3181831697bc905cb9e240",
        "4111 1111 1111 1111 5x",
        "x4111 1111 1111 1111",
    ] {
        let full = longest_digit_run(text.as_bytes(), 1);
        for min in [1, 7, 9, 12] {
            let probed = longest_digit_run(text.as_bytes(), min);
            assert_eq!(probed >= min, full >= min, "{text} {min}");
        }
    }
}

#[test]
fn redactor_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Redactor>();
    let r = std::sync::Arc::new(redactor());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let r = r.clone();
            std::thread::spawn(move || r.redact_text("ssn 123-45-6789", &mut []).into_owned())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "ssn [REDACTED:ssn]");
    }
}

#[test]
fn write_fields_matches_write_field_member_by_member() {
    let r = redactor();
    let members = [
        ("a", "1"),
        ("token", "\"t\""),
        ("b", "{\"c\":\"4111111111111111\"}"),
        ("d", "\"ok\""),
    ];
    let mut batched = String::from("{");
    assert_eq!(r.write_fields(&members, &mut batched, &mut []), 4);
    let mut single = String::from("{");
    for (k, v) in members {
        r.write_field(k, v, &mut single, &mut []);
    }
    assert_eq!(batched, single);
    let clean = [("a", "1"), ("b", "\"x\"")];
    let mut out = String::from("{");
    r.write_fields(&clean, &mut out, &mut []);
    assert_eq!(out, r#"{"a":1,"b":"x""#);
}

#[test]
fn keyed_hashes_are_stable_under_a_second_pass() {
    let mut actions = std::collections::HashMap::new();
    actions.insert("secret_key".to_string(), "hash".to_string());
    let config = RedactConfig {
        actions,
        hash_key: Some("k".into()),
        ..Default::default()
    };
    let r = Redactor::new(config).unwrap();
    let once = field(
        &r,
        "o",
        r#"{"password":"p1","to":"Ann@Example.com","user":" x"}"#,
    );
    let inner = &once[5..once.len() - 1];
    assert_eq!(field(&r, "o", inner), once);
    assert!(
        once.contains("[HASH:secret_key:") && once.contains("[HASH:email:"),
        "{once}"
    );
    assert_eq!(
        field(&r, "username", r#"  "ann:pw1""#),
        r#"{"username":"ann:[REDACTED:user_password]"}"#
    );
}

#[test]
fn url_with_empty_user_name_loses_its_password() {
    assert_eq!(
        red("redis://:RedisPw20@h:6379/0"),
        "redis://:[REDACTED:url_password]@h:6379/0"
    );
}

#[test]
fn url_authority_keeps_its_host_when_password_looks_like_an_email() {
    for (url, want) in [
        (
            "postgres://admin:Hunter2Secret@db.example.com:5432/x",
            "postgres://admin:[REDACTED:url_password]@db.example.com:5432/x",
        ),
        (
            "ftp://ftpuser:FtpPw77@files.example.org/pub",
            "ftp://ftpuser:[REDACTED:url_password]@files.example.org/pub",
        ),
        (
            "mongodb+srv://svc:MgPw99@cluster0.example.net/db",
            "mongodb+srv://svc:[REDACTED:url_password]@cluster0.example.net/db",
        ),
        (
            "redis://:Pw4@cache.example.com:6379",
            "redis://:[REDACTED:url_password]@cache.example.com:6379",
        ),
        (
            "https://u:Pa!ss@api.example.com/v1",
            "https://u:[REDACTED:url_password]@api.example.com/v1",
        ),
    ] {
        assert_eq!(red(url), want);
    }
    // A user name that is itself an e-mail address is still one.
    let out = red("https://bob%40example.com:pw@host/");
    assert!(!out.contains("bob") && !out.contains("pw@"), "{out}");
    assert_eq!(
        red("mail jane@example.com now"),
        "mail [REDACTED:email] now"
    );
}

#[test]
fn colon_and_quoted_assignments_in_free_text() {
    assert_eq!(
        red("password: ColonPw8"),
        "password: [REDACTED:secret_param]"
    );
    assert_eq!(
        red("db_password:ColonPw8 ok"),
        "db_password:[REDACTED:secret_param] ok"
    );
    assert_eq!(
        red(r#"Password="QuotedPw10""#),
        r#"Password="[REDACTED:secret_param]""#
    );
    assert_eq!(
        red("token = 'two words' end"),
        "token = '[REDACTED:secret_param]' end"
    );
    assert_eq!(
        red(r#"cfg {"secret": "a b;c"} x"#),
        r#"cfg {"secret": "[REDACTED:secret_param]"} x"#
    );
}

#[test]
fn command_line_flags_lose_their_values() {
    assert_eq!(
        red("run --password SpacePw18 --token SpaceTok19 -v"),
        "run --password [REDACTED:secret_param] --token [REDACTED:secret_param] -v"
    );
    assert_eq!(
        red("cli --password=EqPw21"),
        "cli --password=[REDACTED:secret_param]"
    );
    assert_eq!(
        red("cli --db-password \"Sp ace\" --api-key K3y"),
        "cli --db-password \"[REDACTED:secret_param]\" --api-key [REDACTED:secret_param]"
    );
}

#[test]
fn mentions_and_empty_values_stay() {
    for clean in [
        "password reset email sent",
        "token bucket refilled",
        "secret santa list",
        "password: ",
        "password:",
        "Password=\"\" rejected",
        "--password-file /etc/x",
        "--token-ttl 3600 --password --verbose",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn malformed_dead_letters_still_lose_secret_keyed_values() {
    let r = redactor();
    let mut counts = vec![0; r.rule_names().len()];
    let raw = br#"{"Authorization":"Bearer abc", "cookie":"MalCookie6",]"#;
    let want = br#"{"Authorization":"[REDACTED:secret_key]", "cookie":"[REDACTED:secret_key]",]"#;
    assert_eq!(&*r.redact_bytes(raw, &mut counts), want);
    assert_eq!(count_of(&r, &counts, "secret_key"), 2);
    let raw = br#"{"token": 123456789012, "x":}"#;
    let want = br#"{"token": "[REDACTED:secret_key]", "x":}"#;
    assert_eq!(&*r.redact_bytes(raw, &mut []), want);
    let raw = br#"{"api_key": bare-word, "note": "kept", "pwd": "unterminated"#;
    let out = String::from_utf8(r.redact_bytes(raw, &mut []).into_owned()).unwrap();
    assert!(
        !out.contains("bare-word") && !out.contains("unterminated"),
        "{out}"
    );
    assert!(out.contains(r#""note": "kept""#), "{out}");
    let stored = field(&r, "body", r#"{"token": 123456789012, "x":}"#);
    assert_eq!(
        stored,
        r#"{"body":"{\"token\": \"[REDACTED:secret_key]\", \"x\":}"}"#
    );
    let clean = br#"{"user":"x", "n": 1,"#;
    assert!(matches!(r.redact_bytes(clean, &mut []), Cow::Borrowed(_)));
}

#[test]
fn assignments_to_secret_key_names_in_free_text() {
    for (text, want) in [
        ("mypassword=Abc123xyz", "mypassword=[REDACTED:secret_param]"),
        (
            "env PGPASSWORD=EnvPw2 psql",
            "env PGPASSWORD=[REDACTED:secret_param] psql",
        ),
        (
            "secret_key=SomeLongerSecret12",
            "secret_key=[REDACTED:secret_param]",
        ),
        (
            "user=bob pass=ShortPass5 ok",
            "user=bob pass=[REDACTED:secret_param] ok",
        ),
        (
            "passwd=Pw3 pwd:Pw4",
            "passwd=[REDACTED:secret_param] pwd:[REDACTED:secret_param]",
        ),
        ("cookie=CookieVal15abcdef", "cookie=[REDACTED:secret_param]"),
        (
            "Cookie: session=CookieVal15abcdef",
            "Cookie: [REDACTED:secret_param]",
        ),
        (
            "Cookie: a=CookieVal15; b=2\nnext line",
            "Cookie: [REDACTED:secret_param]\nnext line",
        ),
        (
            "xxxxxxxxxxxxpassword=Abc123xyz",
            "xxxxxxxxxxxxpassword=[REDACTED:secret_param]",
        ),
        (
            "spring.datasource.password = Dotted7",
            "spring.datasource.password = [REDACTED:secret_param]",
        ),
        (
            "{'db_password': 'Py dict8'}",
            "{'db_password': '[REDACTED:secret_param]'}",
        ),
        (
            "Authorization: Token short9",
            "Authorization: Token [REDACTED:secret_param]",
        ),
    ] {
        assert_eq!(red(text), want, "{text}");
    }
}

#[test]
fn json_in_text_keeps_its_closing_brackets() {
    for (text, want) in [
        (
            r#"{"apiKey": 12345678}"#,
            r#"{"apiKey": [REDACTED:secret_param]}"#,
        ),
        (
            r#"body={"password":null}"#,
            r#"body={"password":[REDACTED:secret_param]}"#,
        ),
        ("[token=abc123]]", "[token=[REDACTED:secret_param]]]"),
        (
            "password=p4ss}word ok",
            "password=[REDACTED:secret_param] ok",
        ),
    ] {
        assert_eq!(red(text), want, "{text}");
    }
}

#[test]
fn hash_rockets_pair_a_secret_name_with_its_value() {
    for (text, want) in [
        (
            r#"{:user => "bob", :password => "Hunter2pw"}"#,
            r#"{:user => "bob", :password => "[REDACTED:secret_param]"}"#,
        ),
        (
            "my %cfg = (api_key=>Hunter2pw, host=>db);",
            "my %cfg = (api_key=>[REDACTED:secret_param], host=>db);",
        ),
        (
            "['db_password' => 'Hunter2pw']",
            "['db_password' => '[REDACTED:secret_param]']",
        ),
    ] {
        assert_eq!(red(text), want, "{text}");
    }
    for clean in [
        "token_count => 5",
        "password => ",
        "(password) => check(password)",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn elements_named_by_a_secret_key_lose_their_content() {
    for (text, want) in [
        (
            "<user>bob</user><password>Hunter2pw</password>",
            "<user>bob</user><password>[REDACTED:secret_param]</password>",
        ),
        (
            "<DbPassword> Hunter2pw </DbPassword>",
            "<DbPassword> [REDACTED:secret_param] </DbPassword>",
        ),
        (
            r#"<wsse:Password Type="PasswordText">Hunter2pw</wsse:Password>"#,
            r#"<wsse:Password Type="PasswordText">[REDACTED:secret_param]</wsse:Password>"#,
        ),
        (
            "<apiKey>\n  Hunter2pw\n</apiKey>",
            "<apiKey>\n  [REDACTED:secret_param]\n</apiKey>",
        ),
        (
            "truncated <token>Hunter2pw",
            "truncated <token>[REDACTED:secret_param]",
        ),
    ] {
        assert_eq!(red(text), want, "{text}");
    }
    for clean in [
        "<password></password><password/><password />",
        "<password><value>x</value></password>",
        "log in with <token> and --verbose",
        "<tokenizer>bpe</tokenizer><passport>x</passport>",
        "if a <password && b > c",
        "</password>x</password>",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn azure_account_keys_and_shared_access_signatures() {
    for (text, want) in [
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=YWJjZGVmZ2hpams=;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:secret_param];EndpointSuffix=core.windows.net",
        ),
        (
            "GET /c/b.txt?sv=2021-08-06&sp=r&sig=AbC%2Bdef%3D HTTP/1.1",
            "GET /c/b.txt?sv=2021-08-06&sp=r&sig=[REDACTED:secret_param] HTTP/1.1",
        ),
        (
            "SharedAccessSignature=sv=2022-11-02&ss=b&Sig=AbCdef123%3D;BlobEndpoint=x",
            "SharedAccessSignature=[REDACTED:secret_param]&ss=b&Sig=[REDACTED:secret_param];BlobEndpoint=x",
        ),
        ("/x?sig=abc", "/x?sig=[REDACTED:secret_param]"),
    ] {
        assert_eq!(red(text), want, "{text}");
    }
    for clean in [
        "type=ANOM_ABEND auid=0 pid=1234 comm=\"java\" sig=11 res=1",
        "AccountName=acct;EndpointSuffix=core.windows.net",
        "GET /x?signal=9&sign=up",
    ] {
        assert_eq!(red(clean), clean);
    }
    let r = redactor();
    assert_eq!(
        field(
            &r,
            "storage",
            r#"{"accountName":"acct","accountKey":"YWJj="}"#
        ),
        r#"{"storage":{"accountName":"acct","accountKey":"[REDACTED:secret_key]"}}"#
    );
}

#[test]
fn assignments_under_plain_names_or_without_values_stay() {
    for clean in [
        "token_count=5",
        "password_reset=true",
        "bigtoken=abc",
        "pass == null",
        "password : reset",
        "Cookie:",
    ] {
        assert_eq!(red(clean), clean);
    }
}

#[test]
fn configured_keys_apply_to_free_text_assignments() {
    let config = RedactConfig {
        keys: vec!["session_id".into()],
        ..Default::default()
    };
    let r = Redactor::new(config).unwrap();
    assert_eq!(
        r.redact_text("login session_id=Sess11 ok", &mut []),
        "login session_id=[REDACTED:secret_param] ok"
    );
}

#[test]
fn mysql_password_glued_to_dash_p() {
    assert_eq!(
        red("mysql -uroot -pMysqlPw6 appdb"),
        "mysql -uroot -p[REDACTED:secret_param] appdb"
    );
    assert_eq!(
        red("/usr/bin/mysqldump -h db -pDumpPw7 --all-databases"),
        "/usr/bin/mysqldump -h db -p[REDACTED:secret_param] --all-databases"
    );
    for clean in ["mysql -p appdb", "mysql -P3306 -u root", "grep -pattern x"] {
        assert_eq!(red(clean), clean);
    }
    // Every client the argument arrays know is named by the text form too.
    for name in args::MYSQL_CLIENTS {
        assert_eq!(
            red(&format!("{name} -h db -pDriftPw1 x")),
            format!("{name} -h db -p[REDACTED:secret_param] x")
        );
    }
}

#[test]
fn client_passwords_after_short_flags() {
    for (text, want) in [
        (
            "curl -u admin:Hunter2pw https://api.example.com",
            "curl -u admin:[REDACTED:secret_param] https://api.example.com",
        ),
        (
            "curl -sS --user 'svc:pa ss' -X POST https://x",
            "curl -sS --user 'svc:[REDACTED:secret_param]' -X POST https://x",
        ),
        (
            "/usr/bin/curl -uadmin:Hunter2pw https://x",
            "/usr/bin/curl -uadmin:[REDACTED:secret_param] https://x",
        ),
        (
            "sshpass -p Hunter2pw ssh root@host",
            "sshpass -p [REDACTED:secret_param] ssh root@host",
        ),
        (
            "sshpass -v -pHunter2pw scp f host:",
            "sshpass -v -p[REDACTED:secret_param] scp f host:",
        ),
        (
            "redis-cli -h cache -p 6380 -a Hunter2pw ping",
            "redis-cli -h cache -p 6380 -a [REDACTED:secret_param] ping",
        ),
        (
            r#"REDIS-CLI --pass "Hunter2pw" info"#,
            r#"REDIS-CLI --pass "[REDACTED:secret_param]" info"#,
        ),
    ] {
        assert_eq!(red(text), want, "{text}");
    }
    for clean in [
        // curl prompts for the password; the user agent is no `--user`.
        "curl -u admin https://api.example.com",
        "curl --user-agent 'Mozilla/5.0 (X11:Linux)' https://x:8080/a",
        "curl.example.com -u x:y",
        "libcurl -u a:b",
        // ssh's port after sshpass's password file, and short flags with no client.
        "sshpass -f /run/pw ssh -p 2222 host",
        "ssh -p 2222 host",
        "docker run -u 1000:1000 img",
        "redis-cli -h cache info keyspace",
        "tar -a -cf x.tar.gz dir",
    ] {
        assert_eq!(red(clean), clean);
    }
}
