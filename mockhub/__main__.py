from mockhub.cli import app

app(prog_name="mockhub")
