"""Report writers. Each reads the list of result records (as in results.jsonl) and writes a file."""
