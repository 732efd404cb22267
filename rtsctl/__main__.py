from rtsctl.cli import leave, main

leave(main())
