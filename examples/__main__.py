from examples.services import main

main()
