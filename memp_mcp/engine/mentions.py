"""What a task names that a reader of its procedure would look for: files of a known name, formats,
languages and named tools, read without a language model (titles.py says them in a when-to-use).

Known names come from lists of common formats, languages, tools, libraries and services; a shell
command's first word in a fenced block or after a `$ ` prompt is a tool too. A name that is also an
ordinary English word ("Go", "Spark", "React") counts only as its users spell it, and not when it opens a
sentence.
"""

from __future__ import annotations

import re

_FENCED = re.compile(r"```[^\n]*\n?(.*?)(?:```|\Z)|~~~[^\n]*\n?(.*?)(?:~~~|\Z)", re.DOTALL)
# Files known by name, kept whole in a when-to-use (any other file is named by its format).
_KNOWN_FILES = frozenset(
    """package.json package-lock.json yarn.lock pnpm-lock.yaml requirements.txt pyproject.toml setup.py
    setup.cfg poetry.lock pipfile pipfile.lock cargo.toml cargo.lock go.mod go.sum gemfile gemfile.lock
    pom.xml build.gradle build.sbt makefile dockerfile docker-compose.yml docker-compose.yaml
    compose.yaml tsconfig.json .gitignore .env readme.md changelog.md cmakelists.txt composer.json
    manage.py settings.py conftest.py tox.ini pytest.ini .pre-commit-config.yaml""".split()
)
# A file's extension, and the format or language it names.
_FORMATS = {
    ext: name.replace("_", " ")
    for ext, name in (
        pair.split("=")
        for pair in """py=Python ipynb=Jupyter_notebook scala=Scala java=Java kt=Kotlin js=JavaScript mjs=JavaScript
        ts=TypeScript tsx=TypeScript jsx=JavaScript go=Go rs=Rust rb=Ruby php=PHP c=C h=C cpp=C++ cc=C++
        cs=C# swift=Swift sh=shell bash=shell ps1=PowerShell sql=SQL r=R jl=Julia lua=Lua pl=Perl html=HTML
        htm=HTML css=CSS scss=CSS md=Markdown rst=reStructuredText tex=LaTeX csv=CSV tsv=TSV json=JSON
        jsonl=JSON_Lines yaml=YAML yml=YAML toml=TOML xml=XML ini=INI txt=text_files log=logs pdf=PDF
        docx=DOCX doc=DOC pptx=PPTX xlsx=XLSX xls=XLS odt=ODT svg=SVG png=PNG jpg=JPEG jpeg=JPEG gif=GIF
        webp=WebP mp4=MP4 mp3=MP3 wav=WAV parquet=Parquet avro=Avro db=database sqlite=SQLite proto=protobuf
        tf=Terraform vue=Vue dart=Dart ex=Elixir hs=Haskell zip=ZIP tar=tar gz=gzip""".split()
    )
}
# Formats, languages, tools, libraries and services, spelt as their users spell them. Those that are
# also ordinary words ("Go", "Spark", "React") count only in that spelling (and not opening a sentence).
_NAMED_TOOLS = """Python Scala Java JavaScript TypeScript Kotlin C++ C# PHP Haskell Perl Elixir Clojure Erlang
    MATLAB Fortran COBOL Bash PowerShell Zsh SQL GraphQL HTML CSS Sass Markdown LaTeX CSV TSV JSON JSONL YAML
    TOML XML PDF DOCX PPTX XLSX SVG Parquet protobuf gRPC WebAssembly pandas NumPy SciPy matplotlib seaborn
    Plotly Bokeh scikit-learn sklearn PyTorch TensorFlow Keras JAX XGBoost LightGBM spaCy NLTK OpenCV Pillow
    Django FastAPI SQLAlchemy Pydantic Celery pytest unittest tox Jest Mocha Vitest Cypress Playwright
    Selenium Puppeteer Node.js Deno npm pnpm pip pipx conda Poetry virtualenv Vue Angular Svelte Next.js
    Nuxt Vite webpack Tailwind jQuery Rails Laravel Symfony .NET ASP.NET Docker Podman Kubernetes kubectl
    Helm Terraform Ansible Vagrant AWS GCP Azure Heroku Vercel Netlify GitHub GitLab Bitbucket git Jenkins
    CircleCI Maven mvn Gradle sbt CMake gcc clang LLVM rustc cargo ESLint Prettier ruff mypy flake8 pylint
    Black isort PostgreSQL Postgres MySQL MariaDB SQLite MongoDB Redis Elasticsearch OpenSearch Cassandra
    DynamoDB Kafka RabbitMQ Hadoop Hive Flink Airflow dbt BigQuery Snowflake Redshift Databricks Tableau
    ffmpeg ImageMagick pandoc Excel PowerPoint Jupyter nginx Apache systemd cron SSH OpenSSL curl wget jq
    awk trivy grype Snyk semgrep Bandit nmap Wireshark Burp Metasploit OWASP CodeQL SonarQube Prometheus
    Grafana Datadog Sentry Caddy Druid Spark React Flask Go Rust Ruby Swift Julia Lua Dart Express
    Spring Unity Unreal Godot Blender Arduino ROS Linux macOS Windows Android iOS Xcode D3.js Three.js
    Chart.js Leaflet Mapbox OpenAI LangChain HuggingFace Transformers Streamlit Gradio Dash Shiny
    Obsidian Notion Jira Slack Stripe Twilio Firebase Supabase Prisma Hibernate JUnit Mockito pytest-django
    Ollama vLLM""".split()
_ORDINARY_WORDS = frozenset(
    "go rust ruby swift julia lua dart express spring unity unreal spark react flask black apache excel "
    "poetry helm dash shiny transformers notion slack windows cargo hive druid caddy".split()
)
_TOOL_BY_WORD = {name.lower(): name for name in _NAMED_TOOLS}
_TOOL_WORD = re.compile(r"(?<![\w.+#-])[A-Za-z][\w.+#-]*[\w+#]|(?<![\w.+#-])[A-Za-z](?![\w.+#-])")
_FILE_NAME = re.compile(r"(?<![\w-])([\w.-]*\w)\.([A-Za-z][A-Za-z0-9]{0,7})\b(?![/\w-])")
# A shell command's first word in a fenced block or a `$ ` prompt: the tool it runs.
_COMMAND_WORDS_SKIPPED = frozenset(
    "cd ls cat echo export source set sudo rm cp mv mkdir touch head tail grep sed find chmod chown pwd "
    "true false exit test then else fi do done for while if env time xargs sort uniq wc tee less more".split()
)
MENTIONED_ITEMS = 6


def mentioned(task: str) -> list[str]:
    """Files of a known name, formats, languages and named tools, in the order the task first names them."""
    found: dict[str, tuple[int, str]] = {}

    def note(position: int, name: str) -> None:
        key = name.casefold()
        if key not in found or position < found[key][0]:
            found[key] = (position, name)

    for match in _FILE_NAME.finditer(task):
        whole, extension = match.group(0), match.group(2).lower()
        if whole.lower() in _KNOWN_FILES:
            note(match.start(), whole)
        elif extension in _FORMATS and whole.lower() not in _TOOL_BY_WORD:
            note(match.start(), _FORMATS[extension])
    for match in re.finditer(r"(?<![\w/.-])\.([A-Za-z][A-Za-z0-9]{0,7})\b(?![/\w.-])", task):
        if match.group(1).lower() in _FORMATS:
            note(match.start(), _FORMATS[match.group(1).lower()])  # a kind of file named by its extension
    for match in re.finditer(r"(?i)(?<![\w.])(Dockerfile|Makefile|Gemfile|Pipfile|Jenkinsfile)\b", task):
        note(match.start(), match.group(1))
    for match in _TOOL_WORD.finditer(task):
        word = match.group()
        name = _TOOL_BY_WORD.get(word.lower())
        if name is None or (word.lower() in _ORDINARY_WORDS and (word != name or _opens_sentence(task, match))):
            continue
        note(match.start(), name)
    for match in _FENCED.finditer(task):
        group = 1 if match.group(1) is not None else 2
        for line in (match.group(group) or "").splitlines():
            if command := _command_word(line):
                note(match.start(group), command)
    for match in re.finditer(r"(?m)^\s*\$\s+(.+)$", task):
        if command := _command_word(match.group(1)):
            note(match.start(), command)
    ordered = [name for _, name in sorted(found.values())]
    return ordered[:MENTIONED_ITEMS]


def _opens_sentence(text: str, match: re.Match[str]) -> bool:
    before = text[: match.start()].rstrip(" \"'(`*")
    return not before or before[-1] in ".!?:\n#-"


def _command_word(line: str) -> str | None:
    """The tool a shell line runs ("mvn clean package" -> "mvn"), or None for a builtin or no command."""
    tokens = line.strip().split()
    while tokens and (tokens[0] in {"sudo", "time", "env"} or "=" in tokens[0]):
        tokens = tokens[1:]
    if not tokens or not re.fullmatch(r"[a-z][a-z0-9_.+-]{1,30}", tokens[0]):
        return None
    word = tokens[0]
    if word in _COMMAND_WORDS_SKIPPED or word.endswith((".py", ".sh", ".js")) or "." in word:
        return None
    return _TOOL_BY_WORD.get(word, word)
