"""Built-in word lists that make the seeded demo data look like a real blog.

Plain tuples, no logic: `seed.py` draws from them with a seeded RNG. They are
tuples (not lists) so nothing can change them at run time and break determinism.
"""

FIRST_NAMES = (
    "Maria", "José", "Ana", "Luis", "Carmen", "Javier", "Lucía", "Pablo", "Sofía", "Diego",
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Mia", "Lucas", "Isabella", "Mason",
    "Amelia", "James", "Harper", "Benjamin", "Evelyn", "Henry", "Abigail", "Samuel", "Emily", "Daniel",
    "Charlotte", "Jack", "Grace", "Owen", "Chloe", "Leo", "Zoe", "Oliver", "Nora", "Elijah",
    "Hannah", "Thomas", "Laura", "Felix", "Clara", "Jonas", "Lena", "Paul", "Marie", "Max",
    "Anna", "Lukas", "Julia", "Finn", "Sara", "Emil", "Ida", "Oskar", "Astrid", "Nils",
    "Camille", "Hugo", "Léa", "Louis", "Chloé", "Arthur", "Manon", "Jules", "Inès", "Théo",
    "Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Elena", "Davide", "Alice", "Andrea",
    "Aisha", "Omar", "Fatima", "Yusuf", "Layla", "Karim", "Noor", "Hassan", "Amira", "Tariq",
    "Priya", "Arjun", "Ananya", "Rohan", "Kavya", "Vikram", "Meera", "Aditya", "Isha", "Rahul",
    "Wei", "Mei", "Jun", "Lin", "Hiroshi", "Yuki", "Haruto", "Sakura", "Min-jun", "Ji-woo",
    "Kwame", "Amara", "Chidi", "Zainab", "Tunde", "Ngozi", "Kofi", "Adaeze", "Sipho", "Thandi",
    "Mateus", "Beatriz", "Rafael", "Mariana", "Gabriel", "Larissa", "Thiago", "Fernanda", "Bruno", "Camila",
    "Olga", "Ivan", "Natalia", "Dmitri", "Katarzyna", "Piotr", "Zofia", "Jakub", "Eszter", "Mihai",
    "Aoife", "Ciaran", "Siobhan", "Declan", "Niamh", "Rhys", "Ffion", "Callum", "Isla", "Fraser",
)

LAST_NAMES = (
    "Garcia", "Rodriguez", "Martinez", "Lopez", "Gonzalez", "Hernandez", "Perez", "Sanchez", "Ramirez", "Torres",
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Walker", "Hall", "Allen", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Koch",
    "Dubois", "Lefebvre", "Moreau", "Laurent", "Simon", "Michel", "Bernard", "Fontaine", "Rousseau", "Girard",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Silva", "Santos", "Oliveira", "Souza", "Costa", "Pereira", "Almeida", "Carvalho", "Ribeiro", "Ferreira",
    "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kovács", "Nagy", "Popescu", "Ivanov", "Petrov", "Novak",
    "Jensen", "Nielsen", "Hansen", "Andersson", "Johansson", "Karlsson", "Nilsson", "Larsen", "Berg", "Lindqvist",
    "Patel", "Sharma", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta", "Joshi",
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou",
    "Tanaka", "Suzuki", "Takahashi", "Watanabe", "Ito", "Kim", "Park", "Choi", "Jung", "Kang",
    "Okafor", "Adeyemi", "Mensah", "Nkosi", "Okonkwo", "Diallo", "Abubakar", "Kamau", "Mwangi", "Otieno",
    "Murphy", "Kelly", "O'Brien", "Walsh", "Byrne", "Evans", "Hughes", "Morgan", "Campbell", "Stewart",
)

# Blog-post vocabulary: a software-engineering blog, because that is what a load
# test of a web API is usually standing in for.
THINGS = (
    "API", "database", "cache", "deploy pipeline", "test suite", "monolith", "message queue",
    "dashboard", "connection pool", "search index", "design system", "on-call rotation", "build",
    "CI pipeline", "feature flag system", "logging setup", "staging environment", "code review process",
    "service mesh", "job scheduler", "data warehouse", "mobile app", "payment flow", "sign-up funnel",
    "load balancer", "ORM layer", "release process", "incident review", "backlog", "home lab",
)
TOPICS = (
    "observability", "load testing", "database indexing", "caching strategies", "async Python",
    "remote work", "technical debt", "code review", "pair programming", "incident response",
    "capacity planning", "feature flags", "continuous delivery", "API design", "schema migrations",
    "performance budgets", "memory leaks", "query planning", "rate limiting", "chaos engineering",
    "documentation", "hiring engineers", "estimating work", "on-call health", "event sourcing",
    "connection pooling", "N+1 queries", "profiling", "type hints", "open source maintenance",
)
TOOLS = (
    "PostgreSQL", "SQLite", "Redis", "Python", "aiohttp", "SQLAlchemy", "Kubernetes", "Terraform",
    "Grafana", "Prometheus", "nginx", "Kafka", "Elasticsearch", "Rust", "Go", "Jupyter", "Polars",
    "Docker", "GitHub Actions", "systemd",
)
ADJECTIVES = (
    "boring", "fast", "reliable", "tiny", "honest", "pragmatic", "surprising", "cheap", "resilient",
    "opinionated", "minimal", "well-tested", "observable", "predictable", "humble", "painless",
)
VERBS_PAST = (
    "rewrote", "measured", "simplified", "profiled", "replaced", "outgrew", "tuned", "migrated",
    "untangled", "benchmarked", "shrank", "rebuilt", "documented", "retired", "sped up", "split up",
)
GERUNDS = (
    "migrating", "profiling", "rewriting", "maintaining", "scaling", "debugging", "load testing",
    "shipping", "running", "operating", "refactoring", "monitoring",
)

TITLE_TEMPLATES = (
    "How we {verb} our {thing} in {n} weeks",
    "{n} lessons from {gerund} a {thing}",
    "Why your {thing} is slower than you think",
    "A practical guide to {topic}",
    "What I learned {gerund} our {thing}",
    "{Topic}: the good, the bad and the ugly",
    "Notes on {topic}",
    "The case for a {adj} {thing}",
    "Building a {adj} {thing} with {tool}",
    "{tool} or {tool2}? A {adj} comparison",
    "Debugging {topic} in production",
    "My {adj} {thing} setup for {year}",
    "Understanding {topic} in {n} minutes",
    "We {verb} our {thing} and nothing broke",
    "Stop worrying about {topic}",
    "{Topic} for small teams",
    "A year of {gerund} {tool}",
    "The hidden cost of {topic}",
)

SENTENCE_OPENERS = (
    "Last spring", "In our experience", "At first", "After a few weeks", "Surprisingly", "To be honest",
    "In practice", "For most teams", "On a busy Monday", "Looking back", "Two releases later",
    "Before the migration", "During the incident", "Once we had numbers", "With hindsight",
)
SUBJECTS = (
    "the team", "our on-call engineer", "the new service", "the database", "every request", "the cache",
    "the deploy pipeline", "the frontend", "my manager", "a junior developer", "the product team",
    "the old cron job", "the load balancer", "our biggest customer", "the query planner", "nobody",
)
OBJECTS = (
    "the slowest endpoint", "the nightly batch job", "a flaky integration test", "the connection pool",
    "half of the dashboards", "the login flow", "three years of technical debt", "the p99 latency",
    "the memory graph", "a missing index", "the retry logic", "the staging database", "the error budget",
    "the report page", "our runbooks", "the serialization code",
)
CLOSERS = (
    "without anyone noticing", "in a single afternoon", "and nobody complained",
    "which mattered more than we expected", "before the holidays", "with a two-line change",
    "after far too many meetings", "and the graphs finally went flat", "while the pager stayed quiet",
    "once we stopped guessing", "and then measured it again", "for the first time in months",
)

COMMENT_SENTENCES = (
    "Great write-up, thanks for sharing!",
    "We hit exactly the same problem with our {thing} last year.",
    "Did you measure {metric} before and after the change?",
    "I'm not convinced {topic} is worth it for small teams.",
    "This saved me a few hours today.",
    "How does this hold up under real traffic?",
    "The part about {topic} really resonated with me.",
    "Would love a follow-up post with the actual numbers.",
    "We went with {tool} instead and never looked back.",
    "Bookmarking this for our next incident review.",
    "Small typo in the third paragraph, otherwise excellent.",
    "Have you tried profiling it with a sampling profiler first?",
    "Our {thing} had the same bottleneck, a missing index as usual.",
    "Honestly the simplest solution is often the right one.",
    "Sharing this with my team tomorrow.",
    "Interesting take, but {tool} made this much easier for us.",
)
METRICS = ("p99 latency", "throughput", "memory usage", "CPU time", "error rate", "cold start time")

FOLLOWER_COUNTS = (3, 5, 8, 12, 20, 34, 55, 89, 144)
DEVICES = (
    "Firefox on Linux", "Safari on macOS", "Chrome on Windows", "the mobile app on Android",
    "the mobile app on iOS", "Edge on Windows",
)

PASSWORD_WORDS = (
    "maple", "harbor", "violet", "canyon", "copper", "meadow", "falcon", "ember", "glacier", "orchid",
    "lantern", "willow", "summit", "pebble", "thunder", "saffron", "compass", "marble", "juniper", "breeze",
    "atlas", "cobalt", "dune", "fjord", "hazel", "indigo", "koala", "lotus", "mango", "nectar",
)

# Words that say nothing about a post's subject: the activity report skips them
# when it counts keywords.
STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "had", "has", "have", "how",
        "i", "in", "is", "it", "its", "my", "of", "on", "or", "our", "so", "that", "the", "their", "then",
        "there", "this", "to", "up", "us", "was", "we", "were", "what", "when", "which", "while", "why",
        "will", "with", "without", "you", "your", "after", "again", "all", "also", "before", "first", "just",
        "more", "most", "much", "not", "nothing", "once", "only", "over", "than", "too", "very", "one", "two",
        "three", "four", "five", "six", "seven", "eight", "nine", "ten", "far", "came", "down", "anyone",
        "nobody", "finally", "stayed",
    }
)
