from contingency.cli import app

app(prog_name="contingency")
