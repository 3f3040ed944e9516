"""The one error of the portable core: a problem the user can fix (bad device, missing package), in one line.

quadnas turns it into its own `QuadnasError`; on a device the kit's command line prints it and exits 2.
"""


class KitError(Exception):
    """A problem the user can fix, said in one line that names the fix."""
