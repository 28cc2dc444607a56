# Stands for: $PREFIX/etc/profile.d/start-services.sh from termux-services, sourced by every
# Termux login shell. It exports SVDIR/LOGDIR and starts runsvdir (service-daemon); in the lab
# the phone's init starts runsvdir at boot instead, so only the exports remain.
export SVDIR=$PREFIX/var/service
export LOGDIR=$PREFIX/var/log
