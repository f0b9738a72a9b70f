from vitalwatch.cli import main

main()
