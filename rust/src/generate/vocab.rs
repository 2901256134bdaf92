//! Word lists the generator draws from: services, categories, messages, request shapes.

/// The dozen services of the mix, in the order `GenStats::services` counts them.
pub const SERVICES: [&str; 12] = [
    "checkout-api",
    "payments",
    "auth",
    "search",
    "inventory",
    "notifications",
    "recommendations",
    "gateway",
    "billing-worker",
    "user-profile",
    "media-transcoder",
    "analytics-ingest",
];

/// Service weights: a few busy front ends, a long tail of quieter workers.
pub const SERVICE_WEIGHTS: [u32; 12] = [18, 9, 12, 11, 8, 6, 7, 14, 4, 5, 3, 3];

/// Non-audit categories with their relative weights.
pub const CATEGORIES: [(&str, u32); 5] = [
    ("application.request_logs", 45),
    ("application.logs", 32),
    ("trace.spans", 15),
    ("application.jobs", 5),
    ("security.auth_events", 3),
];

pub const AUDIT_CATEGORY: &str = "security.audit_logs";

/// Messages by level code; `{}` is replaced by a number.
pub const MESSAGES: [&[&str]; 5] = [
    &[
        "cache lookup key=product:{} hit",
        "entering handler for route /api/v2/items",
        "resolved 3 feature flags in {}us",
        "connection pool stats idle={} busy=2",
        "serialized response body ({} bytes)",
        "retry budget remaining {}",
    ],
    &[
        "request completed in {}ms",
        "user signed in",
        "order {} placed",
        "processed batch of {} messages",
        "password reset email sent",
        "token bucket refilled with {} tokens",
        "GET /api/v2/products returned 200",
        "scheduled job nightly-report finished",
        "cart updated with {} items",
    ],
    &[
        "slow query took {}ms",
        "retrying upstream call, attempt {}",
        "deprecated API version v1 used by client",
        "rate limit at {}% for tenant",
        "certificate expires in {} days",
    ],
    &[
        "upstream returned 503 after {}ms",
        "failed to charge order {}: gateway timeout",
        "database deadlock detected, transaction {} rolled back",
        "unhandled exception in request handler",
        "could not deserialize message at offset {}",
    ],
    &[
        "out of memory: killed worker {}",
        "data corruption detected in shard {}",
        "primary database unreachable for {}s",
    ],
];

/// Text that exercises decoders: CJK, emoji with modifiers and ZWJ, combining marks, RTL.
pub const UNICODE: [&str; 8] = [
    "用户登录成功",
    "注文を受け付けました",
    "결제가 완료되었습니다",
    "deploy finished 🚀✅",
    "team 👩🏽‍💻👨‍👩‍👧 on call",
    "café naïve re\u{301}sume\u{301} Z\u{335}a\u{336}lgo",
    "طلب جديد من العميل",
    "Grüße aus Köln — ½ done",
];

pub const HTTP_METHODS: [&str; 5] = ["GET", "GET", "POST", "PUT", "DELETE"];
pub const HTTP_PATHS: [&str; 8] = [
    "/api/v2/products",
    "/api/v2/cart",
    "/api/v2/orders",
    "/api/v2/users/me",
    "/healthz",
    "/api/v2/search",
    "/api/v2/checkout/confirm",
    "/static/app.js",
];
pub const HTTP_STATUS: [u64; 8] = [200, 200, 200, 201, 204, 304, 404, 500];
pub const CONTENT_TYPES: [&str; 3] = ["application/json", "text/html", "application/grpc"];
pub const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148",
];

pub const DB_SYSTEMS: [&str; 3] = ["postgresql", "redis", "mysql"];
pub const DB_STATEMENTS: [&str; 4] = [
    "SELECT id, name, price FROM products WHERE id = $1",
    "UPDATE carts SET updated_at = now() WHERE user_id = $1",
    "GET session:{}",
    "INSERT INTO orders (user_id, total) VALUES (?, ?)",
];

pub const SPAN_NAMES: [&str; 5] = [
    "HTTP GET",
    "HTTP POST",
    "db.query",
    "cache.get",
    "queue.publish",
];
pub const SPAN_KINDS: [&str; 4] = ["server", "client", "internal", "producer"];

pub const FEATURES: [&str; 6] = [
    "checkout",
    "search",
    "recommendations",
    "one-click-buy",
    "wishlist",
    "new-onboarding",
];
pub const COST_CENTERS: [&str; 4] = ["cc-retail", "cc-platform", "cc-growth", "cc-data"];
/// User tiers with weights; about one tiered event in ten is `enterprise`.
pub const TIERS: [(&str, u32); 3] = [("free", 60), ("pro", 30), ("enterprise", 10)];
pub const TAGS: [&str; 6] = ["canary", "eu-west-1", "us-east-1", "beta", "mobile", "web"];

pub const AUDIT_ACTIONS: [&str; 6] = [
    "login",
    "read",
    "export",
    "update_permissions",
    "delete",
    "download",
];
pub const AUDIT_RESOURCES: [&str; 4] = [
    "customers/{}/records",
    "invoices/{}",
    "patients/{}/chart",
    "roles/admin",
];
pub const DATA_CATEGORIES: [&str; 3] = ["PII", "PHI", "PCI"];
pub const REGULATIONS: [&str; 3] = ["GDPR", "HIPAA", "SOX"];

/// Stack frames for the two trace styles the mix carries.
pub const PY_FRAMES: [&str; 4] = [
    "  File \"/srv/app/handlers/orders.py\", line {}, in create_order\n    total = pricing.total(cart)\n",
    "  File \"/srv/app/pricing.py\", line {}, in total\n    return sum(item.price for item in cart.items)\n",
    "  File \"/usr/lib/python3.12/site-packages/sqlalchemy/engine/base.py\", line {}, in execute\n    return meth(self, distilled_params)\n",
    "  File \"/srv/app/clients/gateway.py\", line {}, in charge\n    resp.raise_for_status()\n",
];
pub const JAVA_FRAMES: [&str; 4] = [
    "\tat com.shop.orders.OrderService.create(OrderService.java:{})\n",
    "\tat com.shop.payments.GatewayClient.charge(GatewayClient.java:{})\n",
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{})\n",
    "\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:{})\n",
];
