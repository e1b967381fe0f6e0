from cronium.cli import main

main()
