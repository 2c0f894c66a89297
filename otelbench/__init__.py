"""otelbench: benchmark LLM providers through OpenTelemetry GenAI instrumentation."""
