from mvc.cli import main

main()
