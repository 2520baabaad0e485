from recombee_cli.cli.main import main

main(prog_name="recombee-cli")
